"""Measure event-loop lag the way a blocked loop shows it: a timer that fires late."""

from __future__ import annotations

import asyncio
import contextlib
import time


class LoopLagProbe:
    """Sleeps `interval` repeatedly and records how late each wake-up was."""

    def __init__(self, interval: float = 0.005) -> None:
        self.interval = interval
        self.lags: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(self.interval)
            self.lags.append(time.perf_counter() - start - self.interval)

    @property
    def max_lag(self) -> float:
        return max(self.lags, default=0.0)

    async def __aenter__(self) -> LoopLagProbe:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
