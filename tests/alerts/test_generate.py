"""The committed rule file is what the generator writes, and says what the Python says."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.generate import (
    FLEET_RULES_FILE,
    RULES_FILE,
    main,
    render_fleet_rules,
    render_rules,
    rules_document,
)
from telemetry.fleet_thresholds import FLEET_RECORDING_RULES, FLEET_THRESHOLDS
from telemetry.thresholds import (
    BY_ALERT,
    LATENCY_QUANTILE,
    LEAK_HORIZON_SECONDS,
    LEAK_WINDOW_SECONDS,
    RECORDING_RULES,
    THRESHOLDS,
    Comparison,
    Threshold,
    promql_number,
)

COMMITTED = RULES_FILE.read_text()
COMMITTED_FLEET = FLEET_RULES_FILE.read_text()
# `<op> <number>` at the end of an operand line; PromQL filters in these rules look like that.
COMPARISON = re.compile(r"(==|>=|<=|>|<)\s*(-?[0-9][0-9.e+]*)\s*$")


def committed_rules(text: str = COMMITTED) -> dict[str, dict[str, Any]]:
    groups = yaml.safe_load(text)["groups"]
    return {
        rule.get("alert") or rule["record"]: rule for group in groups for rule in group["rules"]
    }


def test_regenerating_leaves_no_diff() -> None:
    assert render_rules() == COMMITTED, "run: python -m alerts.generate"
    assert render_fleet_rules() == COMMITTED_FLEET, "run: python -m alerts.generate"


def test_check_mode_tells_stale_from_fresh(tmp_path: Path) -> None:
    target = tmp_path / "rules.yml"
    fleet = tmp_path / "fleet.rules.yml"
    args = ["--output", str(target), "--fleet-output", str(fleet)]
    assert main(["--check", *args]) == 1
    assert main(args) == 0
    assert target.read_text() == COMMITTED
    assert fleet.read_text() == COMMITTED_FLEET
    assert main(["--check", *args]) == 0
    target.write_text(COMMITTED.replace("0.8", "0.7"))
    assert main(["--check", *args]) == 1
    assert main(args) == 0
    fleet.write_text(COMMITTED_FLEET.replace("0.8", "0.7"))
    assert main(["--check", *args]) == 1


@pytest.mark.parametrize(
    ("text", "thresholds"),
    [(COMMITTED, THRESHOLDS), (COMMITTED_FLEET, FLEET_THRESHOLDS)],
    ids=["per-replica", "fleet"],
)
def test_every_threshold_in_the_yaml_equals_the_python_one(
    text: str, thresholds: tuple[Threshold, ...]
) -> None:
    rules = committed_rules(text)
    for t in thresholds:
        rule = rules[t.alert]
        found = [
            (Comparison(m.group(1)), float(m.group(2)))
            for line in rule["expr"].splitlines()
            if (m := COMPARISON.search(line))
        ]
        expected = [(t.condition.op, t.condition.value)]
        if t.guard is not None:
            expected.append((t.guard.op, t.guard.value))
        assert found == expected, t.alert
        assert rule["for"] == t.for_duration
        assert rule["labels"] == {"severity": t.severity.value}
        assert rule["annotations"] == dict(t.annotations)


def test_leak_rule_uses_the_window_horizon_and_memory_limit() -> None:
    expr = committed_rules()["MarketApiMemoryLeakSuspected"]["expr"]
    window = f"[{LEAK_WINDOW_SECONDS // 3600}h]"
    assert f'predict_linear(process_memory_usage_bytes{{job="market-api"}}{window}, ' in expr
    assert f", {LEAK_HORIZON_SECONDS}))" in expr
    assert f'deriv(process_memory_usage_bytes{{job="market-api"}}{window})' in expr
    assert f"> {promql_number(BY_ALERT['MarketApiMemoryHigh'].value)}\n" in expr


def test_recording_rules_are_level_metric_operations() -> None:
    rules = committed_rules() | committed_rules(COMMITTED_FLEET)
    for r in (*RECORDING_RULES, *FLEET_RECORDING_RULES):
        assert re.fullmatch(r"[a-z_]+:[a-z_]+:[a-z0-9_]+", r.record), r.record
        assert rules[r.record]["expr"] == r.expr
    quantile = rules["job_quantile:http_server_request_duration_seconds:histogram_quantile_rate5m"]
    assert quantile["labels"] == {"quantile": str(LATENCY_QUANTILE)}
    assert f"histogram_quantile({LATENCY_QUANTILE}," in quantile["expr"]


@pytest.mark.parametrize("text", [COMMITTED, COMMITTED_FLEET], ids=["per-replica", "fleet"])
def test_every_alert_reads_only_series_that_exist(text: str) -> None:
    """An alert on a recording rule nobody records would never fire: every `level:metric:op`
    name an alert mentions is recorded in the same file, and recorded before it is read."""
    recorded: list[str] = []
    for rule in yaml.safe_load(text)["groups"][0]["rules"]:
        for name in re.findall(r"\b[a-z_]+:[a-z_]+:[a-z0-9_]+\b", rule["expr"]):
            assert name in recorded, f"{rule.get('alert') or rule['record']} reads {name} early"
        if "record" in rule:
            recorded.append(rule["record"])


def test_copies_with_shorter_for_durations() -> None:
    short = tuple(dataclasses.replace(t, for_seconds=5) for t in THRESHOLDS)
    doc = rules_document(short)
    alerts = [r for r in doc["groups"][0]["rules"] if "alert" in r]
    assert {r["for"] for r in alerts} == {"5s"}
    assert [r["expr"] for r in alerts] == [t.expr for t in THRESHOLDS]


def test_the_groups_have_different_names() -> None:
    """Prometheus refuses two groups of one name across the files it loads."""
    names = [yaml.safe_load(text)["groups"][0]["name"] for text in (COMMITTED, COMMITTED_FLEET)]
    assert len(set(names)) == 2


@pytest.mark.parametrize("t", FLEET_THRESHOLDS, ids=lambda t: t.alert)
def test_a_changed_fleet_threshold_shows_in_the_rendering(t: Threshold) -> None:
    changed = dataclasses.replace(
        t, condition=dataclasses.replace(t.condition, value=t.condition.value + 1)
    )
    rendered = render_fleet_rules(tuple(changed if x is t else x for x in FLEET_THRESHOLDS))
    assert rendered != COMMITTED_FLEET


@pytest.mark.parametrize("t", THRESHOLDS, ids=lambda t: t.alert)
def test_a_changed_threshold_shows_in_the_rendering(t: Threshold) -> None:
    changed = dataclasses.replace(
        t, condition=dataclasses.replace(t.condition, value=t.condition.value + 1)
    )
    rendered = render_rules(tuple(changed if x is t else x for x in THRESHOLDS))
    assert rendered != COMMITTED
