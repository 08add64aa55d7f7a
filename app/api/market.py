"""Market, dashboard and analysis routes.

Each answer is a cache entry sent as its stored JSON bytes, with `ETag` and `Cache-Control`
(`app/api/response_cache.py`); the response model documents the shape in OpenAPI only.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from app.api.response_cache import ResponseCache
from app.api.responses import ERROR_RESPONSES
from app.cache.source import CachedSource
from app.market.models import MarketOverview, Movers, Regime, Ticker
from app.market.service import MAX_REGIME_WINDOW, MIN_REGIME_WINDOW, MarketService
from app.services import get_market
from app.upstream.client import UnknownSymbol

router = APIRouter()
SYMBOL_PATTERN = r"^[A-Za-z0-9]{2,20}$"
Market = Annotated[MarketService, Depends(get_market)]


async def _answer(
    request: Request, market: MarketService, source: CachedSource, member: str | None = None
) -> Response:
    responses: ResponseCache = request.app.state.responses
    answer = await responses.answer(request, market.cache, source, member)
    if answer is None:
        raise UnknownSymbol(member or "")
    return answer


@router.get("/api/market/movers", response_model=Movers, responses=ERROR_RESPONSES, tags=["market"])
async def market_movers(
    request: Request,
    market: Market,
    limit: Annotated[int, Query(ge=1, le=50, description="Entries per side.")] = 10,
) -> Response:
    """Top gainers and losers by 24 h percent change."""
    return await _answer(request, market, market.movers_source(limit))


@router.get(
    "/api/market/tickers/{symbol}",
    response_model=Ticker,
    responses=ERROR_RESPONSES,
    tags=["market"],
)
async def market_ticker(
    request: Request,
    market: Market,
    symbol: Annotated[str, Path(pattern=SYMBOL_PATTERN, examples=["BTCUSDT"])],
) -> Response:
    """One symbol's 24 h statistics (symbols are case-insensitive)."""
    return await _answer(request, market, market.tickers_source(), symbol.upper())


@router.get(
    "/api/dashboard/overview",
    response_model=MarketOverview,
    responses=ERROR_RESPONSES,
    tags=["dashboard"],
)
async def dashboard_overview(request: Request, market: Market) -> Response:
    """Market-wide breadth, averages and extremes."""
    return await _answer(request, market, market.overview_source())


@router.get(
    "/api/analysis/regime", response_model=Regime, responses=ERROR_RESPONSES, tags=["analysis"]
)
async def analysis_regime(
    request: Request,
    market: Market,
    symbol: Annotated[str, Query(pattern=SYMBOL_PATTERN)] = "BTCUSDT",
    window: Annotated[
        int,
        Query(ge=MIN_REGIME_WINDOW, le=MAX_REGIME_WINDOW, description="Price steps to analyse."),
    ] = 100,
) -> Response:
    """Trend (t-statistic of returns) and volatility regime over the last `window` steps."""
    symbol = symbol.upper()
    # Reject unknown symbols from the cached snapshot, so bad input never costs upstream calls.
    await market.ticker(symbol)
    return await _answer(request, market, market.regime_source(symbol, window))
