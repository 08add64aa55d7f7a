"""What the upstream exchange really did lately, for the health endpoint.

Health used to say "ok" for the upstream whatever happened. `UpstreamHealth` is told the outcome
of every call (`HealthTrackedExchange` wraps the client the service uses, so injected faults
count too) and answers `degraded` while the latest call failed, with the recent failures and the
time of the last success. It is passive: it never calls the exchange itself, so a health probe
costs the exchange nothing; the next real call after a recovery turns it back to `ok`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

from app.upstream.client import ExchangeClient, UnknownSymbol, UpstreamError
from app.upstream.models import PriceHistory, Ticker

T = TypeVar("T")

RECENT_SECONDS: Final = 60.0
"""The span `recent_failures` counts over."""
_MAX_REMEMBERED: Final = 10_000
"""Failure times kept for that count: bounded, however fast calls fail."""


class UpstreamHealth:
    """Outcomes of upstream calls. `clock` is monotonic (ages), `wall` is epoch seconds (when)."""

    def __init__(
        self,
        *,
        recent_seconds: float = RECENT_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        self._recent_seconds = recent_seconds
        self._clock = clock
        self._wall = wall
        self._failures: deque[float] = deque(maxlen=_MAX_REMEMBERED)
        self.consecutive_failures = 0
        self._last_success: tuple[float, float] | None = None  # (monotonic, epoch)
        self._last_failure: tuple[float, float, str] | None = None  # (monotonic, epoch, reason)

    def succeeded(self) -> None:
        self.consecutive_failures = 0
        self._last_success = (self._clock(), self._wall())

    def failed(self, reason: str) -> None:
        now = self._clock()
        self.consecutive_failures += 1
        self._failures.append(now)
        self._last_failure = (now, self._wall(), reason)

    @property
    def status(self) -> str:
        return "degraded" if self.consecutive_failures else "ok"

    def recent_failures(self) -> int:
        horizon = self._clock() - self._recent_seconds
        while self._failures and self._failures[0] < horizon:
            self._failures.popleft()
        return len(self._failures)

    def report(self) -> dict[str, Any]:
        now = self._clock()
        success = self._last_success
        failure = self._last_failure
        return {
            "status": self.status,
            "consecutive_failures": self.consecutive_failures,
            "recent_failures": self.recent_failures(),
            "recent_seconds": self._recent_seconds,
            "last_success": None
            if success is None
            else {"at": success[1], "seconds_ago": round(now - success[0], 3)},
            "last_failure": None
            if failure is None
            else {
                "at": failure[1],
                "seconds_ago": round(now - failure[0], 3),
                "reason": failure[2],
            },
        }


class HealthTrackedExchange:
    """Any `ExchangeClient`, reporting each call's outcome to an `UpstreamHealth`.

    An unknown symbol is an answer, so it counts as a success; a cancelled call counts as
    nothing (the exchange did not fail, the caller went away).
    """

    def __init__(self, inner: ExchangeClient, health: UpstreamHealth) -> None:
        self.inner = inner
        self.health = health

    @property
    def calls(self) -> int:
        return self.inner.calls

    async def tickers(self) -> list[Ticker]:
        return await self._call(self.inner.tickers)

    async def ticker(self, symbol: str) -> Ticker:
        return await self._call(lambda: self.inner.ticker(symbol))

    async def history(self, symbol: str, points: int) -> PriceHistory:
        return await self._call(lambda: self.inner.history(symbol, points))

    async def close(self) -> None:
        await self.inner.close()

    async def _call(self, call: Callable[[], Awaitable[T]]) -> T:
        try:
            result = await call()
        except UnknownSymbol:
            self.health.succeeded()
            raise
        except UpstreamError as exc:
            self.health.failed(str(exc))
            raise
        self.health.succeeded()
        return result
