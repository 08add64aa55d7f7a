"""Market, dashboard and analysis routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import Response

from app.api.responses import ERROR_RESPONSES, json_bytes
from app.market.models import MarketOverview, Movers, Regime, Ticker
from app.market.service import MAX_REGIME_WINDOW, MIN_REGIME_WINDOW, MarketService
from app.services import get_market

router = APIRouter()
SYMBOL_PATTERN = r"^[A-Za-z0-9]{2,20}$"
Market = Annotated[MarketService, Depends(get_market)]


@router.get("/api/market/movers", response_model=Movers, responses=ERROR_RESPONSES, tags=["market"])
async def market_movers(
    market: Market,
    limit: Annotated[int, Query(ge=1, le=50, description="Entries per side.")] = 10,
) -> Response:
    """Top gainers and losers by 24 h percent change."""
    return json_bytes(await market.movers(limit))


@router.get(
    "/api/market/tickers/{symbol}",
    response_model=Ticker,
    responses=ERROR_RESPONSES,
    tags=["market"],
)
async def market_ticker(
    market: Market,
    symbol: Annotated[str, Path(pattern=SYMBOL_PATTERN, examples=["BTCUSDT"])],
) -> Response:
    """One symbol's 24 h statistics (symbols are case-insensitive)."""
    return json_bytes(await market.ticker(symbol.upper()))


@router.get(
    "/api/dashboard/overview",
    response_model=MarketOverview,
    responses=ERROR_RESPONSES,
    tags=["dashboard"],
)
async def dashboard_overview(market: Market) -> Response:
    """Market-wide breadth, averages and extremes."""
    return json_bytes(await market.overview())


@router.get(
    "/api/analysis/regime", response_model=Regime, responses=ERROR_RESPONSES, tags=["analysis"]
)
async def analysis_regime(
    market: Market,
    symbol: Annotated[str, Query(pattern=SYMBOL_PATTERN)] = "BTCUSDT",
    window: Annotated[
        int,
        Query(ge=MIN_REGIME_WINDOW, le=MAX_REGIME_WINDOW, description="Price steps to analyse."),
    ] = 100,
) -> Response:
    """Trend (t-statistic of returns) and volatility regime over the last `window` steps."""
    return json_bytes(await market.regime(symbol.upper(), window))
