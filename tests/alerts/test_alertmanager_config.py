"""amtool accepts the Alertmanager configuration and routes every severity where it belongs."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from devstack.alertmanager import (
    ALERTMANAGER_CONFIG,
    WEBHOOK_URL_PLACEHOLDER,
    render_alertmanager_config,
    write_alertmanager_config,
)
from devstack.process import require_binary
from telemetry.thresholds import THRESHOLDS, Severity, Threshold

RECEIVER_OF: dict[str, str] = {
    Severity.CRITICAL: "page",
    Severity.WARNING: "ticket",
    Severity.INFO: "dashboard",
}
CONFIG: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = require_binary("amtool", "prometheus-alertmanager")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)


def route_test(labels: dict[str, str], expected: str) -> subprocess.CompletedProcess[str]:
    return amtool(
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        f"--verify.receivers={expected}",
        *(f"{name}={value}" for name, value in labels.items()),
    )


# --- Structure (no binary needed) -----------------------------------------------------------


def test_grouping_and_timing() -> None:
    route = CONFIG["route"]
    assert route["group_by"] == ["alertname", "job"]
    assert route["receiver"] == "dashboard"
    for key in ("group_wait", "group_interval", "repeat_interval"):
        assert re.fullmatch(r"[0-9]+[smh]", route[key]), key
    assert [r["matchers"] for r in route["routes"]] == [
        [f'severity="{s}"'] for s in ("critical", "warning", "info")
    ]


def test_leak_is_inhibited_by_memory_on_the_same_instance() -> None:
    assert CONFIG["inhibit_rules"] == [
        {
            "source_matchers": ['alertname="MarketApiMemoryHigh"'],
            "target_matchers": ['alertname="MarketApiMemoryLeakSuspected"'],
            "equal": ["job", "instance"],
        }
    ]


def test_every_receiver_posts_to_the_app_with_resolved_notifications() -> None:
    assert {r["name"] for r in CONFIG["receivers"]} == set(RECEIVER_OF.values())
    for receiver in CONFIG["receivers"]:
        assert receiver["webhook_configs"] == [
            {"url": WEBHOOK_URL_PLACEHOLDER, "send_resolved": True, "max_alerts": 50}
        ]


def test_rendering_replaces_the_webhook_url_and_nothing_else() -> None:
    url = "http://127.0.0.1:18123/api/alerts/webhook"
    rendered = render_alertmanager_config(url)
    original = ALERTMANAGER_CONFIG.read_text()
    assert rendered == original.replace(WEBHOOK_URL_PLACEHOLDER, url)
    assert rendered.count(url) == len(RECEIVER_OF)
    assert WEBHOOK_URL_PLACEHOLDER not in rendered


@pytest.mark.parametrize(
    "url",
    ["ftp://127.0.0.1/x", "http://127.0.0.1:1/a b", "http://x/\n  - bad: yaml", "http://x/\n", ""],
)
def test_rendering_refuses_urls_that_would_change_the_yaml(url: str) -> None:
    with pytest.raises(ValueError, match="URL"):
        render_alertmanager_config(url)


# --- amtool ---------------------------------------------------------------------------------


@pytest.mark.alertmanager
def test_amtool_checks_the_config() -> None:
    result = amtool("check-config", str(ALERTMANAGER_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "1 inhibit rules" in result.stdout


@pytest.mark.alertmanager
def test_amtool_checks_a_rendered_copy(tmp_path: Path) -> None:
    config = write_alertmanager_config(
        tmp_path / "alertmanager.yml", "http://127.0.0.1:18123/api/alerts/webhook"
    )
    result = amtool("check-config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.alertmanager
def test_commented_receiver_examples_are_valid(tmp_path: Path) -> None:
    """Uncommenting the Slack and email examples gives a configuration amtool accepts."""
    text = ALERTMANAGER_CONFIG.read_text()
    uncommented = re.sub(r"(?m)^    # (\w+_configs:|  .*)$", r"    \1", text)
    assert uncommented.count("\n    slack_configs:") == 1
    assert uncommented.count("\n    email_configs:") == 1
    config = tmp_path / "alertmanager.yml"
    config.write_text(uncommented)
    result = amtool("check-config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.alertmanager
@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        ({"severity": "critical", "alertname": "Anything", "job": "market-api"}, "page"),
        ({"severity": "warning", "alertname": "Anything", "job": "market-api"}, "ticket"),
        ({"severity": "info", "alertname": "Anything", "job": "market-api"}, "dashboard"),
        ({"alertname": "NoSeverity", "job": "market-api"}, "dashboard"),
        ({"severity": "debug", "alertname": "Unknown", "job": "market-api"}, "dashboard"),
    ],
    ids=["critical", "warning", "info", "no-severity", "unknown-severity"],
)
def test_routing_by_severity(labels: dict[str, str], receiver: str) -> None:
    result = route_test(labels, receiver)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == receiver


@pytest.mark.alertmanager
@pytest.mark.parametrize("t", THRESHOLDS, ids=lambda t: t.alert)
def test_routing_of_each_alert(t: Threshold) -> None:
    labels = {"alertname": t.alert, "job": "market-api", "instance": "127.0.0.1:8000", **t.labels}
    result = route_test(labels, RECEIVER_OF[t.severity])
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.alertmanager
def test_routing_test_fails_on_the_wrong_receiver() -> None:
    result = route_test({"severity": "critical", "alertname": "X", "job": "market-api"}, "ticket")
    assert result.returncode != 0
