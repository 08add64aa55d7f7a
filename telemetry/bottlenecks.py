"""Which alert thresholds are breached, judged in-process the way the rules judge them.

Every number comes from the same counters the metrics export, and every threshold, `for:` and
minimum history from `telemetry.thresholds`, so `/bottlenecks` and the alerts cannot disagree
about where the lines are. `evaluate` judges one moment; `LiveAlerts` judges every sample of the
window and remembers since when each condition holds, so an alert is `pending` until its
condition has held for the rule's `for:` and `firing` after, as in Prometheus.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from telemetry import thresholds as th
from telemetry.window import (
    RATE_WINDOW_SECONDS,
    RecentWindow,
    Snapshot,
    histogram_quantile,
    least_squares,
)


class AlertState(StrEnum):
    """Prometheus' alert states."""

    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


@dataclass(frozen=True)
class Check:
    alert: str
    severity: str
    value: float | None
    threshold: float
    comparison: str
    unit: str
    breached: bool
    """The condition holds at this evaluation (the alert is pending or firing)."""
    runbook_url: str
    detail: str
    guard_value: float | None = None
    for_seconds: int = 0
    state: AlertState = AlertState.INACTIVE
    active_seconds: float | None = None
    """How long the condition has held at every evaluation (None while inactive)."""

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["state"] = str(self.state)
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
        for_seconds=t.for_seconds,
        state=AlertState.PENDING if breached else AlertState.INACTIVE,
        active_seconds=0.0 if breached else None,
    )


def evaluate(
    window: RecentWindow,
    bounds: tuple[float, ...],
    websockets_active: int | None,
    now: Snapshot | None = None,
) -> list[Check]:
    """Every threshold judged at `now` (default: a snapshot taken now). Without the history of
    earlier evaluations, a breached condition is only `pending`: `LiveAlerts` has that history."""
    now = now or window.now()
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
    leak = th.MEMORY_LEAK_SUSPECTED
    history = window.history_seconds(now, th.LEAK_WINDOW_SECONDS)
    fit = least_squares(window.rss_series(now, th.LEAK_WINDOW_SECONDS))
    if fit is None or not leak.judgeable(history):
        detail = (
            f"needs {leak.min_history_seconds}s of RSS history before judging a trend, "
            f"has {history:.0f}s"
        )
        checks.append(_check(leak, None, detail))
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


class LiveAlerts:
    """The thresholds judged at every sample of `window`, with Prometheus' `for:` semantics.

    A condition that holds at an evaluation makes its alert pending (remembering when it began);
    one that has held at every evaluation for the threshold's `for_seconds` makes it firing; one
    evaluation where it does not hold makes it inactive again. Time is the snapshots' own clock.
    """

    def __init__(
        self,
        window: RecentWindow,
        bounds: tuple[float, ...],
        websockets_active: Callable[[], int | None],
    ) -> None:
        self._window = window
        self._bounds = bounds
        self._websockets_active = websockets_active
        self._active_since: dict[str, float] = {}

    def evaluate(self, now: Snapshot | None = None) -> list[Check]:
        now = now or self._window.now()
        checks = evaluate(self._window, self._bounds, self._websockets_active(), now)
        return [self._track(check, now.at) for check in checks]

    def _track(self, check: Check, at: float) -> Check:
        if not check.breached:
            self._active_since.pop(check.alert, None)
            return check
        since = self._active_since.setdefault(check.alert, at)
        held = max(0.0, at - since)
        state = AlertState.FIRING if th.BY_ALERT[check.alert].firing(held) else AlertState.PENDING
        return dataclasses.replace(check, state=state, active_seconds=held)
