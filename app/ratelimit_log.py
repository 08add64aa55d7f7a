"""Log a recurring problem at most once per interval, with how many times it happened since.

A failing dependency can fail thousands of times a second; the log should say so once, not
thousands of times.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


class RateLimitedLogger:
    def __init__(
        self,
        logger: logging.Logger,
        interval: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._logger = logger
        self._interval = interval
        self._clock = clock
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, topic: str, message: str, *args: object) -> bool:
        """Log unless `topic` was logged within the interval; True if it was logged."""
        now = self._clock()
        last = self._last.get(topic)
        if last is not None and now - last < self._interval:
            self._suppressed[topic] = self._suppressed.get(topic, 0) + 1
            return False
        suppressed = self._suppressed.pop(topic, 0)
        self._last[topic] = now
        if suppressed:
            message += " (%d similar messages suppressed)"
            args = (*args, suppressed)
        self._logger.warning(message, *args)
        return True
