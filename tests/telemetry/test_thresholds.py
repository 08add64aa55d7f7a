from __future__ import annotations

import dataclasses
import math

import pytest

from telemetry.thresholds import (
    BY_ALERT,
    CACHE_HIT_RATE_LOW,
    HIGH_LATENCY,
    JOB,
    MEMORY_HIGH,
    MEMORY_LEAK_SUSPECTED,
    RSS_LIMIT_BYTES,
    SERVICE_DOWN,
    THRESHOLDS,
    TOO_MANY_WEBSOCKETS,
    Comparison,
    Severity,
    Threshold,
    promql_number,
)

ALERT_NAMES = {
    "MarketApiCacheHitRateLow",
    "MarketApiHighLatency",
    "MarketApiMemoryHigh",
    "MarketApiTooManyWebSockets",
    "MarketApiMemoryLeakSuspected",
    "MarketApiDown",
}


def test_one_threshold_per_alert_of_the_conventions() -> None:
    assert {t.alert for t in THRESHOLDS} == ALERT_NAMES
    assert len(THRESHOLDS) == len(ALERT_NAMES)
    assert dict(BY_ALERT) == {t.alert: t for t in THRESHOLDS}


def test_decided_values() -> None:
    assert CACHE_HIT_RATE_LOW.value == 0.80
    assert CACHE_HIT_RATE_LOW.guard is not None
    assert CACHE_HIT_RATE_LOW.guard.value > 0
    assert HIGH_LATENCY.value == 0.1
    assert RSS_LIMIT_BYTES == 157_286_400
    assert MEMORY_HIGH.value == RSS_LIMIT_BYTES
    assert MEMORY_LEAK_SUSPECTED.value == RSS_LIMIT_BYTES
    assert TOO_MANY_WEBSOCKETS.value == 100


@pytest.mark.parametrize("t", THRESHOLDS, ids=lambda t: t.alert)
def test_every_alert_is_complete(t: Threshold) -> None:
    assert t.severity in set(Severity)
    assert t.for_seconds > 0
    assert set(t.annotations) == {"summary", "description", "runbook_url"}
    assert t.runbook_url == f"docs/runbooks.md#{t.alert.lower()}"
    assert "{{" not in t.summary, "summary is a static sentence"
    assert t.summary.endswith(".")
    assert "{{" in t.description, "description carries templated values"
    assert f'job="{JOB}"' in t.expr, "rules judge this service's job only"


@pytest.mark.parametrize(
    ("t", "below", "at", "above"),
    [
        pytest.param(HIGH_LATENCY, 0.099, 0.1, 0.25, id="latency"),
        pytest.param(
            MEMORY_HIGH, RSS_LIMIT_BYTES - 1, RSS_LIMIT_BYTES, RSS_LIMIT_BYTES + 1, id="memory"
        ),
        pytest.param(TOO_MANY_WEBSOCKETS, 99, 100, 101, id="websockets"),
    ],
)
def test_upper_limits_are_strict(t: Threshold, below: float, at: float, above: float) -> None:
    assert t.condition.op is Comparison.GT
    assert not t.breached(below)
    assert not t.breached(at)
    assert t.breached(above)
    assert not t.breached(math.nan)


def test_cache_hit_rate_needs_traffic() -> None:
    t = CACHE_HIT_RATE_LOW
    assert t.breached(0.79, guard_value=1.0)
    assert t.breached(0.0, guard_value=50.0)
    assert not t.breached(0.80, guard_value=50.0)
    assert not t.breached(0.5, guard_value=0.99), "an idle service is not judged"
    assert not t.breached(math.nan, guard_value=50.0)
    with pytest.raises(ValueError, match="guard_value"):
        t.breached(0.5)


def test_leak_needs_growth() -> None:
    t = MEMORY_LEAK_SUSPECTED
    assert t.breached(RSS_LIMIT_BYTES + 1, guard_value=10.0)
    assert not t.breached(RSS_LIMIT_BYTES, guard_value=10.0)
    assert not t.breached(2 * RSS_LIMIT_BYTES, guard_value=0.0), "flat memory is not a leak"
    assert not t.breached(2 * RSS_LIMIT_BYTES, guard_value=-5.0)
    with pytest.raises(ValueError, match="guard_value"):
        t.breached(2 * RSS_LIMIT_BYTES)


def test_down_is_up_equal_zero() -> None:
    assert SERVICE_DOWN.breached(0)
    assert not SERVICE_DOWN.breached(1)
    assert SERVICE_DOWN.absent_query == f'up{{job="{JOB}"}}'
    assert SERVICE_DOWN.expr.endswith(f'absent(up{{job="{JOB}"}})')


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.8, "0.8"), (0.1, "0.1"), (157286400, "157286400"), (100.0, "100"), (0, "0")],
)
def test_promql_numbers_round_trip(value: float, text: str) -> None:
    assert promql_number(value) == text
    assert float(text) == value


def test_promql_numbers_must_be_finite() -> None:
    with pytest.raises(ValueError, match="finite"):
        promql_number(math.inf)


def test_for_durations_render_in_prometheus_syntax() -> None:
    assert CACHE_HIT_RATE_LOW.for_duration == "10m"
    assert SERVICE_DOWN.for_duration == "1m"
    assert dataclasses.replace(SERVICE_DOWN, for_seconds=5).for_duration == "5s"
    assert dataclasses.replace(SERVICE_DOWN, for_seconds=7200).for_duration == "2h"
    with pytest.raises(ValueError, match="positive"):
        _ = dataclasses.replace(SERVICE_DOWN, for_seconds=0).for_duration


def test_thresholds_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        HIGH_LATENCY.for_seconds = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        HIGH_LATENCY.labels["severity"] = "info"  # type: ignore[index]
