"""Pure computations over ticker rows and price series (no I/O, easy to test)."""

from __future__ import annotations

import itertools
import math
import statistics
from collections.abc import Sequence
from typing import Any

from app.market.models import MarketOverview, Mover, Movers, Regime, Trend, Volatility

# Regime thresholds: a trend needs a t-statistic beyond +-2 (about 95 % confidence that the mean
# step return is not zero); volatility bands are per-step standard deviations.
TREND_T_STAT = 2.0
LOW_VOLATILITY_PCT = 0.15
HIGH_VOLATILITY_PCT = 0.35


def _mover(row: dict[str, Any]) -> Mover:
    return Mover(
        symbol=row["symbol"],
        price=row["price"],
        change_pct_24h=row["change_pct_24h"],
        quote_volume_24h=row["quote_volume_24h"],
    )


def movers(rows: Sequence[dict[str, Any]], limit: int) -> Movers:
    ranked = sorted(rows, key=lambda r: (r["change_pct_24h"], r["symbol"]))
    as_of = max((r["updated_at_ms"] for r in rows), default=0)
    return Movers(
        limit=limit,
        gainers=[_mover(r) for r in reversed(ranked[-limit:])],
        losers=[_mover(r) for r in ranked[:limit]],
        as_of_ms=as_of,
    )


def overview(rows: Sequence[dict[str, Any]]) -> MarketOverview:
    if not rows:
        raise ValueError("no tickers")
    changes = [r["change_pct_24h"] for r in rows]
    advancers = sum(1 for c in changes if c > 0)
    decliners = sum(1 for c in changes if c < 0)
    ranked = sorted(rows, key=lambda r: (r["change_pct_24h"], r["symbol"]))
    moving = advancers + decliners
    return MarketOverview(
        symbols=len(rows),
        advancers=advancers,
        decliners=decliners,
        unchanged=len(rows) - moving,
        breadth=round(advancers / moving, 4) if moving else 0.5,
        average_change_pct=round(statistics.fmean(changes), 4),
        median_change_pct=round(statistics.median(changes), 4),
        total_quote_volume=round(sum(r["quote_volume_24h"] for r in rows), 2),
        top_gainer=_mover(ranked[-1]),
        top_loser=_mover(ranked[0]),
        as_of_ms=max(r["updated_at_ms"] for r in rows),
    )


def regime(symbol: str, closes: Sequence[float], step_seconds: float) -> Regime:
    """Classify trend by the t-statistic of log returns, volatility by their deviation."""
    if len(closes) < 3:
        raise ValueError("need at least 3 prices")
    returns = [math.log(b / a) for a, b in itertools.pairwise(closes)]
    n = len(returns)
    mean = statistics.fmean(returns)
    sigma = statistics.stdev(returns)
    t_stat = mean / (sigma / math.sqrt(n)) if sigma > 0 else 0.0
    moved = sum(abs(r) for r in returns)
    net = math.log(closes[-1] / closes[0])
    trend: Trend = "sideways"
    if t_stat >= TREND_T_STAT:
        trend = "up"
    elif t_stat <= -TREND_T_STAT:
        trend = "down"
    sigma_pct = sigma * 100
    volatility: Volatility = "normal"
    if sigma_pct < LOW_VOLATILITY_PCT:
        volatility = "low"
    elif sigma_pct >= HIGH_VOLATILITY_PCT:
        volatility = "high"
    return Regime(
        symbol=symbol,
        window=len(closes),
        step_seconds=step_seconds,
        trend=trend,
        volatility=volatility,
        regime=f"{trend}/{volatility}",
        total_return_pct=round((math.exp(net) - 1) * 100, 4),
        volatility_pct=round(sigma_pct, 4),
        trend_t_stat=round(t_stat, 3),
        efficiency_ratio=round(abs(net) / moved, 4) if moved else 0.0,
    )
