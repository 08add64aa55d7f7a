"""What the exchange tells us, validated once at the boundary."""

from __future__ import annotations

from pydantic import BaseModel, Field


class Ticker(BaseModel):
    """24-hour rolling statistics of one symbol."""

    symbol: str = Field(examples=["BTCUSDT"])
    price: float = Field(gt=0, description="Last traded price.")
    open_24h: float = Field(gt=0)
    high_24h: float = Field(gt=0)
    low_24h: float = Field(gt=0)
    change_pct_24h: float = Field(description="Percent change of price against open_24h.")
    volume_24h: float = Field(ge=0, description="Base-asset volume.")
    quote_volume_24h: float = Field(ge=0, description="Quote-asset (USDT) volume.")
    updated_at_ms: int = Field(description="Exchange time of the last update, epoch ms.")


class PriceHistory(BaseModel):
    """Closing prices at a fixed step, oldest first."""

    symbol: str
    step_seconds: float = Field(gt=0)
    closes: list[float]
