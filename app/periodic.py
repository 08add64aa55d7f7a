"""A background task that calls a function every few seconds until it is stopped.

The cache sweep, the telemetry window and the event-loop lag probe all need exactly this; the
callback is synchronous and quick, so a tick never overlaps the next one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable


class Periodic:
    def __init__(self, name: str, interval: float, tick: Callable[[], object]) -> None:
        self.name = name
        self.interval = interval
        self._tick = tick
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            self._tick()
