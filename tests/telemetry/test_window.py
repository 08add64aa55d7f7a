"""The in-process versions of histogram_quantile, deriv/predict_linear and the alert checks."""

from __future__ import annotations

import math

import pytest

from telemetry import thresholds as th
from telemetry.bottlenecks import evaluate
from telemetry.window import RecentWindow, Snapshot, histogram_quantile, least_squares

BOUNDS = (0.1, 0.5, 1.0)


@pytest.mark.parametrize(
    ("q", "counts", "expected"),
    [
        (0.5, [10, 0, 0, 0], 0.05),  # inside the first bucket, from 0
        (0.95, [50, 50, 0, 0], 0.1 + 0.4 * (95 - 50) / 50),
        (0.5, [0, 0, 0, 5], 1.0),  # +Inf bucket: the highest finite bound
        (0.99, [1, 0, 99, 0], 0.5 + 0.5 * (99 - 1) / 99),
    ],
)
def test_histogram_quantile_like_prometheus(q: float, counts: list[int], expected: float) -> None:
    assert histogram_quantile(q, BOUNDS, counts) == pytest.approx(expected)


def test_histogram_quantile_without_observations_is_nan() -> None:
    assert math.isnan(histogram_quantile(0.95, BOUNDS, [0, 0, 0, 0]))


def test_least_squares_on_a_line() -> None:
    points = [(t, 100.0 + 2.0 * t) for t in range(0, 60, 5)]
    fit = least_squares(points)
    assert fit is not None
    slope, fitted_last = fit
    assert slope == pytest.approx(2.0)
    assert fitted_last == pytest.approx(100.0 + 2.0 * 55)
    assert least_squares(points[:1]) is None


def window_of(*snaps: Snapshot) -> RecentWindow:
    """A window that sampled all but the last snapshot; the last one is "now"."""
    window = RecentWindow(lambda: snaps[-1], interval=15, horizon=3600)
    for earlier in snaps[:-1]:
        window._ring.append(earlier)
    return window


def snap(at: float, lookups: int, hits: int, buckets: tuple[int, ...], rss: int) -> Snapshot:
    return Snapshot(at, lookups, hits, buckets, rss)


HTTP_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
FAST = (100, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
SLOW = (0, 0, 0, 0, 0, 0, 100, 0, 0, 0, 0, 0, 0, 0, 0)


def checks(window: RecentWindow, ws: int | None = 0) -> dict[str, bool]:
    return {c.alert: c.breached for c in evaluate(window, HTTP_BOUNDS, ws)}


def test_everything_quiet() -> None:
    result = checks(
        window_of(snap(0, 0, 0, (0,) * 15, 50 << 20), snap(60, 600, 590, FAST, 50 << 20))
    )
    assert result == {t.alert: False for t in th.THRESHOLDS}


def test_each_threshold_breaches_on_its_own_input() -> None:
    low_hits = window_of(snap(0, 0, 0, (0,) * 15, 1), snap(60, 600, 300, FAST, 1))
    assert checks(low_hits)[th.CACHE_HIT_RATE_LOW.alert]
    idle = window_of(snap(0, 0, 0, (0,) * 15, 1), snap(60, 30, 0, FAST, 1))  # 0.5 lookups/s
    assert not checks(idle)[th.CACHE_HIT_RATE_LOW.alert]
    slow = window_of(snap(0, 0, 0, (0,) * 15, 1), snap(60, 0, 0, SLOW, 1))
    assert checks(slow)[th.HIGH_LATENCY.alert]
    big = window_of(snap(0, 0, 0, (0,) * 15, th.RSS_LIMIT_BYTES + 1))
    assert checks(big)[th.MEMORY_HIGH.alert]
    assert checks(window_of(snap(0, 0, 0, (0,) * 15, 1)), ws=th.WEBSOCKETS_MAX + 1)[
        th.TOO_MANY_WEBSOCKETS.alert
    ]
    history = th.LEAK_MIN_HISTORY_SECONDS
    growing = window_of(
        *(snap(t, 0, 0, (0,) * 15, (60 << 20) + t * 20_000) for t in range(0, history + 15, 15))
    )
    result = checks(growing)
    assert result[th.MEMORY_LEAK_SUSPECTED.alert]  # 20 kB/s -> +288 MB in 4h
    assert not result[th.MEMORY_HIGH.alert]


def test_the_leak_is_not_judged_on_less_than_the_minimum_history() -> None:
    # The same growth, one sample short of the minimum history: no trend is judged at all.
    history = th.LEAK_MIN_HISTORY_SECONDS
    young = window_of(
        *(snap(t, 0, 0, (0,) * 15, (60 << 20) + t * 20_000) for t in range(0, history, 15))
    )
    [leak] = [
        c for c in evaluate(young, HTTP_BOUNDS, 0) if c.alert == th.MEMORY_LEAK_SUSPECTED.alert
    ]
    assert not leak.breached
    assert leak.value is None
    assert f"needs {history}s of RSS history" in leak.detail
