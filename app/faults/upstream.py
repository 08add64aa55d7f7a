"""An exchange client that is slower or less reliable than the one it wraps, on demand.

It sits inside the telemetry wrapper, so the injected latency and errors show in the upstream
spans and metrics exactly as a real slow or failing exchange would, for the simulator and the
HTTP client alike.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from app.faults.models import FaultSettings
from app.upstream.client import ExchangeClient, UpstreamUnavailable
from app.upstream.models import PriceHistory, Ticker

INJECTED_REASON = "injected fault"


class FaultyExchange:
    """Reads the current faults before each call; with none set it only forwards."""

    def __init__(
        self,
        inner: ExchangeClient,
        faults: Callable[[], FaultSettings],
        rng: random.Random | None = None,
    ) -> None:
        self.inner = inner
        self._faults = faults
        self._rng = rng or random.Random()

    @property
    def calls(self) -> int:
        return self.inner.calls

    async def tickers(self) -> list[Ticker]:
        await self._before("/tickers")
        return await self.inner.tickers()

    async def ticker(self, symbol: str) -> Ticker:
        await self._before("/tickers/{symbol}")
        return await self.inner.ticker(symbol)

    async def history(self, symbol: str, points: int) -> PriceHistory:
        await self._before("/history/{symbol}")
        return await self.inner.history(symbol, points)

    async def close(self) -> None:
        await self.inner.close()

    async def _before(self, endpoint: str) -> None:
        faults = self._faults()
        if faults.upstream_latency_ms > 0:
            await asyncio.sleep(faults.upstream_latency_ms / 1000)
        # A failed call is never sent, so it does not count in `calls`, like a refused one.
        if faults.upstream_error_rate > 0 and self._rng.random() < faults.upstream_error_rate:
            raise UpstreamUnavailable(endpoint, INJECTED_REASON)
