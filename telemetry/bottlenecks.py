"""Which alert thresholds are breached right now, judged in-process like the rules judge them.

Every number comes from the same counters the metrics export, and every threshold from
`telemetry.thresholds`, so `/bottlenecks` and the alerts cannot disagree about where the lines
are. What differs is only the `for:` duration: this answers "now", the alert "for a while".
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from telemetry import thresholds as th
from telemetry.window import RATE_WINDOW_SECONDS, RecentWindow, histogram_quantile, least_squares


@dataclass(frozen=True)
class Check:
    alert: str
    severity: str
    value: float | None
    threshold: float
    comparison: str
    unit: str
    breached: bool
    runbook_url: str
    detail: str
    guard_value: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("value", "guard_value"):
            if isinstance(out[key], float) and not math.isfinite(out[key]):
                out[key] = None
        return out


def _check(t: th.Threshold, value: float | None, detail: str, guard: float | None = None) -> Check:
    if value is None or (t.guard is not None and guard is None):
        breached = False
    else:
        breached = t.breached(value, guard) if t.guard is not None else t.breached(value)
    return Check(
        alert=t.alert,
        severity=str(t.severity),
        value=value,
        threshold=t.value,
        comparison=str(t.condition.op),
        unit=str(t.condition.unit),
        breached=breached,
        runbook_url=t.runbook_url,
        detail=detail,
        guard_value=guard,
    )


def evaluate(
    window: RecentWindow, bounds: tuple[float, ...], websockets_active: int | None
) -> list[Check]:
    now = window.now()
    base = window.baseline(now)
    checks: list[Check] = []

    if base is not None:
        seconds = now.at - base.at
        lookups = now.cache_lookups - base.cache_lookups
        hits = now.cache_hits - base.cache_hits
        rate = lookups / seconds
        ratio = hits / lookups if lookups else None
        checks.append(
            _check(
                th.CACHE_HIT_RATE_LOW,
                ratio,
                f"{hits} hits of {lookups} lookups over the last {seconds:.0f}s",
                rate,
            )
        )
        deltas = [a - b for a, b in zip(now.http_buckets, base.http_buckets, strict=True)]
        p95 = histogram_quantile(th.LATENCY_QUANTILE, bounds, deltas)
        checks.append(
            _check(
                th.HIGH_LATENCY,
                None if math.isnan(p95) else p95,
                f"{sum(deltas)} requests over the last {seconds:.0f}s, all routes",
            )
        )
    else:
        detail = f"needs two samples within {RATE_WINDOW_SECONDS:.0f}s; ask again shortly"
        checks.append(_check(th.CACHE_HIT_RATE_LOW, None, detail))
        checks.append(_check(th.HIGH_LATENCY, None, detail))

    checks.append(_check(th.MEMORY_HIGH, float(now.rss_bytes), "resident set size of this process"))
    checks.append(
        _check(
            th.TOO_MANY_WEBSOCKETS,
            None if websockets_active is None else float(websockets_active),
            "open WebSocket connections of this process",
        )
    )
    fit = least_squares(window.rss_series(now, th.LEAK_WINDOW_SECONDS))
    if fit is None:
        checks.append(_check(th.MEMORY_LEAK_SUSPECTED, None, "not enough RSS history yet"))
    else:
        slope, fitted_now = fit
        predicted = fitted_now + slope * th.LEAK_HORIZON_SECONDS
        checks.append(
            _check(
                th.MEMORY_LEAK_SUSPECTED,
                predicted,
                f"RSS trend {slope:+.0f} B/s; predicted in {th.LEAK_HORIZON_SECONDS // 3600}h",
                slope,
            )
        )
    checks.append(_check(th.SERVICE_DOWN, 1.0, "this process is answering: up = 1"))
    return checks
