"""A background task that calls a function every few seconds until it is stopped.

The cache sweep, the telemetry window and the event-loop lag probe all need exactly this; the
callback is synchronous and quick, so a tick never overlaps the next one.

A tick that raises must not end the task: one episode of "too many open files" used to stop the
sweeper, the telemetry window and the lag probe for good, and made shutdown fail when stopping
re-raised the old error. A failure is counted (`errors`, which telemetry exports as
`background.task.errors`), logged at most once a minute per task, and the next tick runs on time.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

from app.ratelimit_log import RateLimitedLogger

log = logging.getLogger(__name__)
_warn = RateLimitedLogger(log)


class Periodic:
    def __init__(self, name: str, interval: float, tick: Callable[[], object]) -> None:
        self.name = name
        self.interval = interval
        self._tick = tick
        self._task: asyncio.Task[None] | None = None
        self.errors = 0
        """Ticks that raised since this task was built."""

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
            try:
                self._tick()
            except Exception as exc:
                self.errors += 1
                _warn.warning(
                    self.name,
                    "background task %s failed (%d failures so far), retrying in %.3g s: %r",
                    self.name,
                    self.errors,
                    self.interval,
                    exc,
                )
