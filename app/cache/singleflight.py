"""Collapse concurrent misses on one key into a single loader call.

The loader runs in a task owned by the group, not by the first caller, so a caller that is
cancelled (client went away) neither cancels the others' result nor leaves them waiting forever.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable
from typing import Any


class SingleFlight:
    """At most one in-flight call per key; the table empties as calls finish."""

    def __init__(self) -> None:
        self._calls: dict[str, asyncio.Task[Any]] = {}
        self.shared = 0  # callers that joined an existing call instead of starting one

    def __len__(self) -> int:
        return len(self._calls)

    async def do(self, key: str, fn: Callable[[], Awaitable[Any]]) -> Any:
        task = self._calls.get(key)
        if task is None:
            task = asyncio.ensure_future(fn())
            self._calls[key] = task
            task.add_done_callback(functools.partial(self._forget, key))
        else:
            self.shared += 1
        return await asyncio.shield(task)

    def _forget(self, key: str, task: asyncio.Task[Any]) -> None:
        if self._calls.get(key) is task:
            del self._calls[key]
        if not task.cancelled():
            task.exception()  # mark retrieved: no "exception was never retrieved" when unawaited
