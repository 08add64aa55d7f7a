"""alerts/alertmanager.compose.yml: the committed configuration, posting to the app service."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from devstack.alertmanager import (
    ALERTMANAGER_CONFIG,
    COMPOSE_ALERTMANAGER_CONFIG,
    COMPOSE_WEBHOOK_URL,
    render_compose_alertmanager_config,
)
from telemetry.fleet_thresholds import FLEET_THRESHOLDS
from telemetry.thresholds import JOB, THRESHOLDS, Severity
from tests.compose import stack


def amtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("amtool")
    assert binary is not None, "amtool comes with the Debian package prometheus-alertmanager"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)


def receiver(config: Path, labels: dict[str, str]) -> str:
    result = amtool(
        "config",
        "routes",
        "test",
        f"--config.file={config}",
        *(f"{k}={v}" for k, v in labels.items()),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout.strip()


def test_the_compose_copy_is_the_committed_config_with_the_service_url() -> None:
    assert COMPOSE_ALERTMANAGER_CONFIG.read_text() == render_compose_alertmanager_config(), (
        "regenerate it: python -m devstack.alertmanager"
    )
    assert stack.container_path(COMPOSE_ALERTMANAGER_CONFIG, "alertmanager") == stack.flag(
        "alertmanager", "--config.file"
    )


def test_the_webhook_goes_through_the_load_balancer() -> None:
    """Through nginx, so a notification is taken while any replica answers (and relayed over
    Redis to every replica's sockets), not lost with the one replica DNS happened to name."""
    host, port = stack.host_port(COMPOSE_WEBHOOK_URL)
    assert host == "nginx"
    assert port in stack.listening_ports()["nginx"]
    assert COMPOSE_WEBHOOK_URL.endswith("/api/alerts/webhook")


@pytest.mark.alertmanager
def test_amtool_accepts_the_compose_copy() -> None:
    result = amtool("check-config", str(COMPOSE_ALERTMANAGER_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 inhibit rules" in result.stdout


@pytest.mark.alertmanager
@pytest.mark.parametrize(
    "labels",
    [
        *(
            {"alertname": t.alert, "job": JOB, "instance": "172.18.0.5:8000", **t.labels}
            for t in THRESHOLDS
        ),
        *({"alertname": t.alert, "job": JOB, **t.labels} for t in FLEET_THRESHOLDS),
        *({"alertname": "Other", "job": JOB, "severity": str(s)} for s in Severity),
        {"alertname": "NoSeverity", "job": JOB},
    ],
    ids=lambda labels: f"{labels['alertname']}-{labels.get('severity', 'none')}",
)
def test_routes_go_where_the_committed_config_sends_them(labels: dict[str, str]) -> None:
    assert receiver(COMPOSE_ALERTMANAGER_CONFIG, labels) == receiver(ALERTMANAGER_CONFIG, labels)
