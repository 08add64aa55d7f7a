from __future__ import annotations

import math
from typing import Any

import pytest

from app.market import analytics


def row(symbol: str, change: float, volume: float = 10.0) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "price": 1.0,
        "change_pct_24h": change,
        "quote_volume_24h": volume,
        "updated_at_ms": 5,
    }


def test_movers_rank_by_change() -> None:
    rows = [row("A", 1), row("B", -3), row("C", 7), row("D", 0), row("E", -1)]
    result = analytics.movers(rows, 2)
    assert [m.symbol for m in result.gainers] == ["C", "A"]
    assert [m.symbol for m in result.losers] == ["B", "E"]


def test_overview_aggregates() -> None:
    rows = [row("A", 2, 100), row("B", -4, 50), row("C", 0, 25), row("D", 6, 25)]
    o = analytics.overview(rows)
    assert (o.symbols, o.advancers, o.decliners, o.unchanged) == (4, 2, 1, 1)
    assert o.breadth == pytest.approx(2 / 3, abs=1e-4)
    assert o.average_change_pct == 1.0
    assert o.median_change_pct == 1.0
    assert o.total_quote_volume == 200
    assert o.top_gainer.symbol == "D"
    assert o.top_loser.symbol == "B"


def test_regime_detects_up_down_and_sideways() -> None:
    up = [100 * math.exp(0.002 * i + 0.0005 * (-1) ** i) for i in range(100)]
    down = [100 * math.exp(-0.002 * i + 0.0005 * (-1) ** i) for i in range(100)]
    flat = [100 * math.exp(0.003 * (-1) ** i) for i in range(100)]
    assert analytics.regime("X", up, 1.0).trend == "up"
    assert analytics.regime("X", down, 1.0).trend == "down"
    r = analytics.regime("X", flat, 1.0)
    assert r.trend == "sideways"
    assert r.volatility == "high"
    assert analytics.regime("X", up, 1.0).volatility == "low"
    assert r.regime == "sideways/high"


def test_regime_needs_data() -> None:
    with pytest.raises(ValueError, match="at least 3"):
        analytics.regime("X", [1.0, 2.0], 1.0)
