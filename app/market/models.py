"""Response models: the OpenAPI contract of the market routes."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.upstream.models import Ticker


class Mover(BaseModel):
    symbol: str
    price: float
    change_pct_24h: float
    quote_volume_24h: float


class Movers(BaseModel):
    """Top gainers and losers over 24 h, by percent change."""

    limit: int
    gainers: list[Mover]
    losers: list[Mover]
    as_of_ms: int


class MarketOverview(BaseModel):
    """Market-wide aggregates for the dashboard header."""

    symbols: int
    advancers: int
    decliners: int
    unchanged: int
    breadth: float = Field(description="advancers / (advancers + decliners), 0..1")
    average_change_pct: float
    median_change_pct: float
    total_quote_volume: float
    top_gainer: Mover
    top_loser: Mover
    as_of_ms: int


Trend = Literal["up", "down", "sideways"]
Volatility = Literal["low", "normal", "high"]


class Regime(BaseModel):
    """Trend and volatility regime of one symbol over the last `window` steps."""

    symbol: str
    window: int
    step_seconds: float
    trend: Trend
    volatility: Volatility
    regime: str = Field(examples=["up/high"])
    total_return_pct: float
    volatility_pct: float = Field(description="Standard deviation of step log-returns, percent.")
    trend_t_stat: float = Field(description="Mean return over its standard error.")
    efficiency_ratio: float = Field(description="|net move| / sum of |moves|, 0..1.")


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer of this service has this shape."""

    error: str = Field(examples=["unknown_symbol"])
    detail: str


__all__ = [
    "ErrorBody",
    "MarketOverview",
    "Mover",
    "Movers",
    "Regime",
    "Ticker",
]
