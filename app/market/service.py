"""Market data through the cache: one upstream read serves every caller until its TTL ends.

Results are cached as JSON (validated once, when computed), so a hit is served without
rebuilding models. Each cached answer is named once, as a `CachedSource`: the methods returning
decoded values and the HTTP routes sending the stored bytes as they are share its entry.

A regime analysis reads one price history per symbol, the longest any window can ask for, and
slices it: the upstream calls that any mix of windows costs is one per symbol per TTL, not one
per (symbol, window) pair a client cares to invent.
"""

from __future__ import annotations

from typing import Any, Final

from app.cache import CacheManager
from app.cache.source import CachedSource
from app.market import analytics
from app.upstream.client import ExchangeClient, UnknownSymbol

MIN_REGIME_WINDOW: Final = 10
MAX_REGIME_WINDOW: Final = 1000
"""The longest window /api/analysis/regime accepts, and the history read for every window."""


class MarketService:
    def __init__(self, upstream: ExchangeClient, cache: CacheManager) -> None:
        self.upstream = upstream
        self.cache = cache

    # ------------------------------------------------------------------ sources
    def tickers_source(self) -> CachedSource:
        """Every ticker by symbol: the one upstream snapshot all other views derive from."""
        return CachedSource("market", "tickers", self._load_ticker_map)

    def movers_source(self, limit: int) -> CachedSource:
        return CachedSource("api", f"movers:{limit}", lambda: self._load_movers(limit))

    def overview_source(self) -> CachedSource:
        return CachedSource("dashboard", "overview", self._load_overview)

    def regime_source(self, symbol: str, window: int) -> CachedSource:
        return CachedSource(
            "analysis",
            f"regime:{symbol}:{window}",
            lambda: self._load_regime(symbol, window),
        )

    def history_source(self, symbol: str) -> CachedSource:
        """The longest history any window needs; each regime answer slices it."""
        return CachedSource("analysis", f"history:{symbol}", lambda: self._load_history(symbol))

    # ------------------------------------------------------------------ decoded values
    async def ticker_map(self) -> dict[str, dict[str, Any]]:
        result: dict[str, dict[str, Any]] = await self.tickers_source().value(self.cache)
        return result

    async def ticker(self, symbol: str) -> dict[str, Any]:
        row = (await self.ticker_map()).get(symbol)
        if row is None:
            raise UnknownSymbol(symbol)
        return row

    async def movers(self, limit: int) -> dict[str, Any]:
        result: dict[str, Any] = await self.movers_source(limit).value(self.cache)
        return result

    async def overview(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.overview_source().value(self.cache)
        return result

    async def regime(self, symbol: str, window: int) -> dict[str, Any]:
        # Reject unknown symbols from the cached snapshot, so bad input never costs upstream calls.
        await self.ticker(symbol)
        result: dict[str, Any] = await self.regime_source(symbol, window).value(self.cache)
        return result

    # ------------------------------------------------------------------ loaders (on a miss)
    async def _load_ticker_map(self) -> dict[str, dict[str, Any]]:
        return {t.symbol: t.model_dump() for t in await self.upstream.tickers()}

    async def _load_movers(self, limit: int) -> dict[str, Any]:
        rows = list((await self.ticker_map()).values())
        return analytics.movers(rows, limit).model_dump()

    async def _load_overview(self) -> dict[str, Any]:
        rows = list((await self.ticker_map()).values())
        return analytics.overview(rows).model_dump()

    async def _load_regime(self, symbol: str, window: int) -> dict[str, Any]:
        history: dict[str, Any] = await self.history_source(symbol).value(self.cache)
        closes = history["closes"][-window:]
        return analytics.regime(symbol, closes, history["step_seconds"]).model_dump()

    async def _load_history(self, symbol: str) -> dict[str, Any]:
        history = await self.upstream.history(symbol, MAX_REGIME_WINDOW)
        return {"closes": history.closes, "step_seconds": history.step_seconds}
