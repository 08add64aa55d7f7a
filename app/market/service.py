"""Market data through the cache: one upstream read serves every caller until its TTL ends.

Results are cached as JSON-ready dicts (validated once, when computed), so a hit is served
without rebuilding models.

A regime analysis reads one price history per symbol, the longest any window can ask for, and
slices it: the upstream calls that any mix of windows costs is one per symbol per TTL, not one
per (symbol, window) pair a client cares to invent.
"""

from __future__ import annotations

from typing import Any, Final

from app.cache import CacheManager, cached
from app.market import analytics
from app.upstream.client import ExchangeClient, UnknownSymbol

MIN_REGIME_WINDOW: Final = 10
MAX_REGIME_WINDOW: Final = 1000
"""The longest window /api/analysis/regime accepts, and the history read for every window."""


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
        history = await self._history(symbol)
        closes = history["closes"][-window:]
        return analytics.regime(symbol, closes, history["step_seconds"]).model_dump()

    @cached("analysis", key=lambda symbol: f"history:{symbol}")
    async def _history(self, symbol: str) -> dict[str, Any]:
        """The longest history any window needs; each regime answer slices it."""
        history = await self.upstream.history(symbol, MAX_REGIME_WINDOW)
        return {"closes": history.closes, "step_seconds": history.step_seconds}
