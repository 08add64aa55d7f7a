"""The fleet alerts are complete, named by the conventions, and built on the per-replica
numbers they scale up."""

from __future__ import annotations

import re

import pytest

from telemetry.fleet_thresholds import (
    FLEET_RECORDING_RULES,
    FLEET_THRESHOLDS,
    FLEET_WEBSOCKET_CAPACITY_USED,
    FLEET_WEBSOCKETS_NEAR_CAPACITY,
    REPLICAS_MISSING,
    REPLICAS_UP,
)
from telemetry.thresholds import (
    BY_ALERT,
    RECORDING_RULES,
    THRESHOLDS,
    WEBSOCKETS_MAX,
    Severity,
    Threshold,
)


@pytest.mark.parametrize("t", FLEET_THRESHOLDS, ids=lambda t: t.alert)
def test_every_fleet_alert_is_complete(t: Threshold) -> None:
    assert re.fullmatch(r"MarketApi[A-Z][A-Za-z]+", t.alert)
    assert t.severity in set(Severity)
    assert t.for_seconds > 0
    assert t.runbook_url == f"docs/runbooks.md#{t.alert.lower()}"
    assert "{{" not in t.summary, "summary is a static sentence"
    assert t.summary.endswith(".")
    assert "{{ $value" in t.description, "description carries the value"
    assert 'job="market-api"' in t.expr


def test_names_do_not_collide_with_the_per_replica_rules() -> None:
    assert not {t.alert for t in FLEET_THRESHOLDS} & {t.alert for t in THRESHOLDS}
    assert not {r.record for r in FLEET_RECORDING_RULES} & {r.record for r in RECORDING_RULES}
    assert not {t.alert for t in FLEET_THRESHOLDS} & set(BY_ALERT), "no /bottlenecks check"


def test_the_fleet_capacity_is_the_per_replica_limit_times_the_replicas_answering() -> None:
    [capacity] = [r for r in FLEET_RECORDING_RULES if r.record == FLEET_WEBSOCKET_CAPACITY_USED]
    assert f"({REPLICAS_UP} * {WEBSOCKETS_MAX})" in capacity.expr
    assert FLEET_WEBSOCKETS_NEAR_CAPACITY.condition.query.startswith(FLEET_WEBSOCKET_CAPACITY_USED)
    assert 0 < FLEET_WEBSOCKETS_NEAR_CAPACITY.value < 1
    assert FLEET_WEBSOCKETS_NEAR_CAPACITY.guard is not None, "no replica: not judged here"


def test_a_missing_replica_is_judged_against_the_recent_peak() -> None:
    assert REPLICAS_MISSING.condition.query.startswith(f"max_over_time({REPLICAS_UP}")
    assert REPLICAS_MISSING.breached(1)
    assert not REPLICAS_MISSING.breached(0)
