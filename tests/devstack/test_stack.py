from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from devstack.prometheus import RULES_DIR
from devstack.stack import Stack, StackConfig, shortened_rules
from telemetry.thresholds import THRESHOLDS

COMMITTED_RULES = RULES_DIR / "market-api.rules.yml"


def rules_by_name(text: str) -> dict[str, dict[str, Any]]:
    [group] = yaml.safe_load(text)["groups"]
    return {rule.get("alert") or rule["record"]: rule for rule in group["rules"]}


def test_shortened_rules_change_only_for_durations() -> None:
    committed = rules_by_name(COMMITTED_RULES.read_text())
    short = rules_by_name(shortened_rules(10))
    assert list(short) == list(committed)
    for name, rule in short.items():
        original = committed[name]
        if "alert" in rule:
            assert rule["for"] == "10s"
            assert {**rule, "for": original["for"]} == original
        else:
            assert rule == original


def test_shortened_rules_never_lengthen_a_duration() -> None:
    short = rules_by_name(shortened_rules(120))
    for threshold in THRESHOLDS:
        expected = "1m" if threshold.for_seconds == 60 else "2m"
        assert short[threshold.alert]["for"] == expected
    with pytest.raises(ValueError, match="at least 1"):
        shortened_rules(0)


def test_free_port_configs_use_distinct_ports() -> None:
    config = StackConfig.on_free_ports(for_seconds=5)
    ports = {
        config.app_port,
        config.memcached_port,
        config.prometheus_port,
        config.alertmanager_port,
    }
    assert len(ports) == 4
    assert config.for_seconds == 5
    assert StackConfig().app_port == 8000
    assert StackConfig().alertmanager_port == 9093


def listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def ports_of(config: StackConfig) -> list[int]:
    return [
        config.app_port,
        config.memcached_port,
        config.prometheus_port,
        config.alertmanager_port,
    ]


@pytest.fixture
def stack() -> Iterator[Stack]:
    config = StackConfig.on_free_ports(
        scrape_interval="1s",
        evaluation_interval="1s",
        for_seconds=10,
        app_env={"LOG_LEVEL": "warning"},
    )
    with Stack(config) as running:
        yield running


@pytest.mark.memcached
@pytest.mark.prometheus
@pytest.mark.alertmanager
@pytest.mark.server
def test_stack_wires_every_server_to_the_others(stack: Stack) -> None:
    with (
        httpx.Client(base_url=stack.app_url, timeout=5) as app,
        httpx.Client(base_url=stack.prometheus_url, timeout=5) as prometheus,
        httpx.Client(base_url=stack.alertmanager_url, timeout=5) as alertmanager,
    ):
        health = app.get("/api/monitoring/performance/health").json()
        memcached = health["components"]["cache"]["memcached"]
        assert memcached == {"reachable": True, "servers": [stack.memcached_address]}
        assert app.get("/api/admin/faults").status_code == 200, "fault injection is on"

        groups = prometheus.get("/api/v1/rules").json()["data"]["groups"]
        alerts = [r for g in groups for r in g["rules"] if r["type"] == "alerting"]
        assert {r["name"] for r in alerts} == {t.alert for t in THRESHOLDS}
        assert all(r["duration"] == 10 for r in alerts)
        assert [g["file"] for g in groups] == [str(stack.rules_file)]
        flags = prometheus.get("/api/v1/status/flags").json()["data"]
        assert "exemplar-storage" in flags["enable-feature"]

        config = alertmanager.get("/api/v2/status").json()["config"]["original"]
        assert f"{stack.app_url}/api/alerts/webhook" in config
        assert "http://127.0.0.1:8000/" not in config

        # Prometheus discovers its targets and Alertmanagers shortly after it is ready.
        deadline = time.monotonic() + 30
        while True:
            targets = prometheus.get("/api/v1/targets").json()["data"]["activeTargets"]
            managers = prometheus.get("/api/v1/alertmanagers").json()["data"]
            if targets and targets[0]["health"] == "up" and managers["activeAlertmanagers"]:
                break
            assert time.monotonic() < deadline, (targets, managers)
            time.sleep(0.2)
        urls = [m["url"] for m in managers["activeAlertmanagers"]]
        assert urls == [f"{stack.alertmanager_url}/api/v2/alerts"]
        assert targets[0]["labels"] == {
            "instance": f"127.0.0.1:{stack.config.app_port}",
            "job": "market-api",
        }
        assert len(targets) == 1
    # One replica is the app alone: no proxy and none of the fleet's backends.
    assert [p.name for p in stack.processes()] == ["memcached", "app", "alertmanager", "prometheus"]


@pytest.mark.memcached
@pytest.mark.prometheus
@pytest.mark.alertmanager
@pytest.mark.server
def test_app_pauses_and_restarts_on_its_port(stack: Stack) -> None:
    health = f"{stack.app_url}/api/monitoring/performance/health"
    stack.pause_app()
    with pytest.raises(httpx.TimeoutException):
        httpx.get(health, timeout=0.5)
    stack.resume_app()
    assert httpx.get(health, timeout=5).status_code == 200

    assert stack.app is not None
    assert stack.app.proc is not None
    first = stack.app.proc.pid
    stack.stop_app()
    assert not listening(stack.config.app_port)
    stack.start_app()
    assert stack.app.proc is not None
    assert stack.app.proc.pid != first
    assert httpx.get(health, timeout=5).status_code == 200


@pytest.mark.memcached
@pytest.mark.prometheus
@pytest.mark.alertmanager
@pytest.mark.server
def test_stop_leaves_nothing_behind() -> None:
    config = StackConfig.on_free_ports(app_env={"LOG_LEVEL": "warning"})
    stack = Stack(config).start()
    workdir = stack.workdir
    stack.pause_app()  # even a stopped (SIGSTOP) app is stopped for good
    stack.stop()
    processes = [stack.memcached, stack.app, stack.alertmanager, stack.prometheus]
    assert all(p is not None and p.proc is not None for p in processes)
    assert all(p.proc.poll() is not None for p in processes if p is not None and p.proc)
    assert not any(listening(port) for port in ports_of(config))
    assert not workdir.exists(), "a temporary workdir is removed"


@pytest.mark.memcached
@pytest.mark.prometheus
@pytest.mark.alertmanager
@pytest.mark.server
def test_failed_start_stops_what_was_started(tmp_path: Path) -> None:
    config = StackConfig.on_free_ports(workdir=tmp_path)
    # Something already listens on Prometheus's port: the last server cannot start.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", config.prometheus_port))
        squatter.listen()
        with pytest.raises((RuntimeError, TimeoutError)):
            Stack(config).start()
    others = [config.app_port, config.memcached_port, config.alertmanager_port]
    assert not any(listening(port) for port in others)
    assert (tmp_path / "app.log").exists(), "a given workdir keeps the logs"


@pytest.mark.memcached
@pytest.mark.prometheus
@pytest.mark.alertmanager
@pytest.mark.server
def test_cli_prints_the_urls_and_ctrl_c_stops_everything(tmp_path: Path) -> None:
    config = StackConfig.on_free_ports()
    argv = [
        sys.executable,
        "-m",
        "devstack.stack",
        f"--app-port={config.app_port}",
        f"--memcached-port={config.memcached_port}",
        f"--prometheus-port={config.prometheus_port}",
        f"--alertmanager-port={config.alertmanager_port}",
        f"--workdir={tmp_path}",
        "--load=steady",
        "--load-rate=5",
    ]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while not any("Ctrl-C stops everything" in line for line in lines):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            lines.append(line)
        text = "".join(lines)
        for url in (
            f"http://127.0.0.1:{config.app_port}",
            f"http://127.0.0.1:{config.prometheus_port}",
            f"http://127.0.0.1:{config.alertmanager_port}",
            f"127.0.0.1:{config.memcached_port}",
        ):
            assert url in text
        preview = (
            "python -m dashboards.preview --prometheus "
            f"http://127.0.0.1:{config.prometheus_port} --out {tmp_path / 'preview'}\n"
        )
        assert preview in text
        deadline = time.monotonic() + 30
        while "[steady]" not in proc.stdout.readline():
            assert time.monotonic() < deadline, "no progress line from the load generator"
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, rest
    assert "stopping" in rest
    assert not any(listening(port) for port in ports_of(config))
