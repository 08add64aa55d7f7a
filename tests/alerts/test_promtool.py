"""promtool accepts the configuration and the rules, and every alert's unit tests pass."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.generate import ALERTS_DIR, FLEET_RULES_FILE, RULES_FILE
from devstack.process import require_binary
from devstack.prometheus import PROMETHEUS_CONFIG, write_prometheus_config
from telemetry.fleet_thresholds import FLEET_RECORDING_RULES, FLEET_THRESHOLDS
from telemetry.thresholds import RECORDING_RULES, THRESHOLDS, Threshold

TESTS_DIR = ALERTS_DIR / "tests"
TEST_FILES = sorted(TESTS_DIR.glob("*.test.yml"))
EVERY_ALERT = (*THRESHOLDS, *FLEET_THRESHOLDS)
RULE_FILE_OF = {
    **{t.alert: RULES_FILE for t in THRESHOLDS},
    **{t.alert: FLEET_RULES_FILE for t in FLEET_THRESHOLDS},
}


def unit_test_file(t: Threshold) -> Path:
    """MarketApiCacheHitRateLow -> alerts/tests/market_api_cache_hit_rate_low.test.yml"""
    words = t.alert.replace("WebSockets", "Websockets")  # one word in file names
    snake = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", words).lower()
    return TESTS_DIR / f"{snake}.test.yml"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = require_binary("promtool", "prometheus")
    return subprocess.run(
        [binary, *args], capture_output=True, text=True, timeout=120, cwd=ALERTS_DIR
    )


# --- What the test files must cover (no binary needed) ------------------------------------


@pytest.mark.parametrize("t", EVERY_ALERT, ids=lambda t: t.alert)
def test_each_alert_has_the_three_cases(t: Threshold) -> None:
    """Not firing at the threshold, pending before `for`, firing at `for` with every label and
    annotation spelled out."""
    doc: dict[str, Any] = yaml.safe_load(unit_test_file(t).read_text())
    assert doc["rule_files"] == [f"../rules/{RULE_FILE_OF[t.alert].name}"]
    checks = [
        check
        for group in doc["tests"]
        for check in group.get("alert_rule_test", [])
        if check["alertname"] == t.alert
    ]
    assert any(check["exp_alerts"] == [] for check in checks), "no case without the alert"
    firing = [alert for check in checks for alert in check["exp_alerts"]]
    assert firing, "no firing case"
    for alert in firing:
        assert alert["exp_labels"]["severity"] == t.severity.value
        assert alert["exp_labels"]["job"] == "market-api"
        assert set(alert["exp_annotations"]) == {"summary", "description", "runbook_url"}
        assert alert["exp_annotations"]["summary"] == t.summary
        assert alert["exp_annotations"]["runbook_url"] == t.runbook_url
    pending = [
        sample["labels"]
        for group in doc["tests"]
        for check in group.get("promql_expr_test", [])
        for sample in check["exp_samples"]
        if sample["labels"].startswith("ALERTS{")
    ]
    assert any(
        f'alertname="{t.alert}"' in labels and 'alertstate="pending"' in labels
        for labels in pending
    ), "no pending case"


def test_no_stray_test_files() -> None:
    assert sorted(unit_test_file(t) for t in EVERY_ALERT) == TEST_FILES


# --- promtool -------------------------------------------------------------------------------


@pytest.mark.prometheus
@pytest.mark.parametrize(
    ("rule_file", "count"),
    [
        (RULES_FILE, len(RECORDING_RULES) + len(THRESHOLDS)),
        (FLEET_RULES_FILE, len(FLEET_RECORDING_RULES) + len(FLEET_THRESHOLDS)),
    ],
    ids=lambda x: x.name if isinstance(x, Path) else str(x),
)
def test_promtool_checks_the_rules(rule_file: Path, count: int) -> None:
    result = promtool("check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {count} rules found" in result.stdout


@pytest.mark.prometheus
def test_promtool_checks_the_config() -> None:
    result = promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout


@pytest.mark.prometheus
def test_promtool_checks_a_rendered_copy(tmp_path: Path) -> None:
    config = write_prometheus_config(
        tmp_path / "prometheus.yml",
        app_target="127.0.0.1:18000",
        alertmanager="127.0.0.1:19093",
        scrape_interval="1s",
        evaluation_interval="1s",
    )
    result = promtool("check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 2 rule files found" in result.stdout


@pytest.mark.prometheus
@pytest.mark.parametrize("path", TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_tests_pass(path: Path) -> None:
    result = promtool("test", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.prometheus
def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    """The unit tests pin the threshold: the same tests against rules whose memory limit is one
    byte lower fail."""
    rules = tmp_path / "rules"
    rules.mkdir()
    text = RULES_FILE.read_text()
    assert text.count("> 157286400\n") == 2
    (rules / RULES_FILE.name).write_text(text.replace("> 157286400\n", "> 157286399\n"))
    tests = tmp_path / "tests"
    tests.mkdir()
    target = tests / "memory.test.yml"
    target.write_text((TESTS_DIR / "market_api_memory_high.test.yml").read_text())
    result = promtool("test", "rules", str(target))
    assert result.returncode != 0
    assert "exactly 150MiB does not alert" in result.stdout + result.stderr


@pytest.mark.prometheus
def test_fleet_unit_tests_can_fail(tmp_path: Path) -> None:
    """The fleet tests pin the capacity threshold: against rules that alert from 79 % on, the
    "exactly 80 %" case fails."""
    rules = tmp_path / "rules"
    rules.mkdir()
    text = FLEET_RULES_FILE.read_text()
    assert text.count(':ratio{job="market-api"} > 0.8\n') == 1
    (rules / FLEET_RULES_FILE.name).write_text(text.replace("} > 0.8\n", "} > 0.79\n"))
    tests = tmp_path / "tests"
    tests.mkdir()
    target = tests / "capacity.test.yml"
    source = TESTS_DIR / "market_api_fleet_websockets_near_capacity.test.yml"
    target.write_text(source.read_text())
    result = promtool("test", "rules", str(target))
    assert result.returncode != 0
    assert "exactly 80% of the capacity does not alert" in result.stdout + result.stderr
