"""Market data through the cache: one upstream read serves every caller until its TTL ends.

Results are cached as JSON-ready dicts (validated once, when computed), so a hit is served
without rebuilding models.
"""

from __future__ import annotations

from typing import Any

from app.cache import CacheManager, cached
from app.market import analytics
from app.upstream.client import ExchangeClient, UnknownSymbol


class MarketService:
    def __init__(self, upstream: ExchangeClient, cache: CacheManager) -> None:
        self.upstream = upstream
        self.cache = cache

    @cached("market", key=lambda: "tickers")
    async def ticker_map(self) -> dict[str, dict[str, Any]]:
        """Every ticker by symbol: the one upstream snapshot all other views derive from."""
        return {t.symbol: t.model_dump() for t in await self.upstream.tickers()}

    async def ticker(self, symbol: str) -> dict[str, Any]:
        row = (await self.ticker_map()).get(symbol)
        if row is None:
            raise UnknownSymbol(symbol)
        return row

    @cached("api", key=lambda limit: f"movers:{limit}")
    async def movers(self, limit: int) -> dict[str, Any]:
        rows = list((await self.ticker_map()).values())
        return analytics.movers(rows, limit).model_dump()

    @cached("dashboard", key=lambda: "overview")
    async def overview(self) -> dict[str, Any]:
        rows = list((await self.ticker_map()).values())
        return analytics.overview(rows).model_dump()

    async def regime(self, symbol: str, window: int) -> dict[str, Any]:
        # Reject unknown symbols from the cached snapshot, so bad input never costs upstream calls.
        await self.ticker(symbol)
        return await self._regime(symbol, window)

    @cached("analysis", key=lambda symbol, window: f"regime:{symbol}:{window}")
    async def _regime(self, symbol: str, window: int) -> dict[str, Any]:
        history = await self.upstream.history(symbol, window)
        return analytics.regime(symbol, history.closes, history.step_seconds).model_dump()
