"""Background loops that cannot die, and the bounded backoff they wait with between attempts.

A loop that talks to Redis fails whenever Redis does; if its task ended on the first error, the
replica would silently stop relaying broadcasts until restarted. `supervise` runs the loop again
after every failure (and after an unexpected return), waiting a bounded, jittered backoff so a
fleet of replicas does not hammer a Redis that is coming back up.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from app.ratelimit_log import RateLimitedLogger

log = logging.getLogger(__name__)
_warn = RateLimitedLogger(log)


class Backoff:
    """Exponential delays from `first` doubling up to `cap` seconds, each with up to 50 %
    jitter taken off; `reset` after a success starts over from `first`."""

    def __init__(self, first: float = 0.1, cap: float = 2.0) -> None:
        if not 0 < first <= cap:
            raise ValueError("need 0 < first <= cap")
        self.first = first
        self.cap = cap
        self._failures = 0

    def next(self) -> float:
        delay = min(self.cap, self.first * 2.0 ** min(self._failures, 30))
        self._failures += 1
        return delay * random.uniform(0.5, 1.0)  # jitter, not a secret

    def reset(self) -> None:
        self._failures = 0


async def supervise(name: str, body: Callable[[], Awaitable[None]], backoff: Backoff) -> None:
    """Run `body` forever: after it raises (or returns), log at most once a minute, wait
    `backoff.next()` and run it again. Only cancellation ends it. `body` resets `backoff` once
    it has made progress, so a long healthy run starts its next retry from the first delay."""
    while True:
        try:
            await body()
            reason = "returned"
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            reason = repr(exc)
        delay = backoff.next()
        _warn.warning(name, "%s stopped (%s); running it again in %.2f s", name, reason, delay)
        await asyncio.sleep(delay)
