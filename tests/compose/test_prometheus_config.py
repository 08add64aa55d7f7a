"""alerts/prometheus.compose.yml: promtool accepts it with the real rules, and the two jobs
give the rules the series they select on."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devstack.prometheus import RULES_DIR
from telemetry.thresholds import JOB
from tests.compose import stack

CONFIG = stack.prometheus()


def job(name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = [j for j in CONFIG["scrape_configs"] if j["job_name"] == name]
    [only] = found
    return only


@pytest.mark.prometheus
def test_promtool_accepts_the_config_and_its_rules(tmp_path: Path) -> None:
    """Checked from a copy laid out as in the container (config file, rules/ beside it), with
    the repository's own rule files: what Prometheus loads in the stack."""
    binary = shutil.which("promtool")
    assert binary is not None, "promtool comes with the Debian package prometheus"
    config_target = stack.container_path(stack.PROMETHEUS_CONFIG, "prometheus")
    rules_target = stack.container_path(RULES_DIR, "prometheus")
    assert Path(rules_target).parent == Path(config_target).parent
    layout = tmp_path / Path(config_target).parent.relative_to("/")
    layout.mkdir(parents=True)
    (layout / Path(rules_target).name).symlink_to(RULES_DIR, target_is_directory=True)
    config = layout / Path(config_target).name
    config.write_text(stack.PROMETHEUS_CONFIG.read_text())
    result = subprocess.run(
        [binary, "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    rule_files = sorted(RULES_DIR.glob("*.rules.yml"))
    assert rule_files
    assert f"SUCCESS: {len(rule_files)} rule files found" in result.stdout


def test_the_direct_scrape_job_is_named_after_the_service_and_keeps_only_up() -> None:
    direct = job(JOB)
    assert direct["metrics_path"] == "/metrics"
    assert "static_configs" not in direct
    [discovery] = direct["dns_sd_configs"]
    assert discovery["type"] == "A"
    assert discovery["names"] == ["app"]
    assert discovery["port"] in stack.listening_ports()["app"]
    assert direct["metric_relabel_configs"] == [
        {"source_labels": ["__name__"], "regex": ".+", "action": "drop"}
    ]
    assert not direct.get("honor_labels")


def test_every_replica_is_a_target_named_as_it_names_itself() -> None:
    """`instance` of `up` is `<address>:<port>` of each address `app` resolves to; each
    replica's service.instance.id (the Collector's `instance`) is its own address and the port
    it listens on. Compose sets no id that would override it, and the replicas bind every
    interface (the Dockerfile's APP_HOST), which is when the app names itself by address."""
    [discovery] = job(JOB)["dns_sd_configs"]
    assert "service.instance.id" not in stack.environment("app")["OTEL_RESOURCE_ATTRIBUTES"]
    assert "APP_PORT" not in stack.environment("app")
    dockerfile = (stack.ROOT / "Dockerfile").read_text()
    assert "APP_HOST=0.0.0.0" in dockerfile
    assert f"APP_PORT={discovery['port']}" in dockerfile
    assert not job(JOB).get("relabel_configs"), "`instance` stays the discovered address"


def test_the_collector_job_keeps_the_job_and_instance_the_collector_derived() -> None:
    scraped = job("otel-collector")
    assert scraped["honor_labels"] is True
    [target] = scraped["static_configs"][0]["targets"]
    host, port = stack.host_port(target)
    assert host == "otel-collector"
    assert port == stack.host_port(stack.collector()["exporters"]["prometheus"]["endpoint"])[1]
    assert scraped["metric_relabel_configs"] == [
        {"source_labels": ["__name__"], "regex": ".+_created", "action": "drop"}
    ]


def test_no_other_job_could_claim_the_service_job_label() -> None:
    names = [j["job_name"] for j in CONFIG["scrape_configs"]]
    assert sorted(names) == sorted([JOB, "otel-collector"])


def test_alerts_go_to_the_compose_alertmanager() -> None:
    [alertmanagers] = CONFIG["alerting"]["alertmanagers"]
    [target] = alertmanagers["static_configs"][0]["targets"]
    host, port = stack.host_port(target)
    assert host == "alertmanager"
    assert port in stack.listening_ports()["alertmanager"]


def test_the_server_stores_exemplars_and_receives_tempo_metrics() -> None:
    command = stack.services()["prometheus"]["command"]
    assert "--enable-feature=exemplar-storage" in command
    assert "--web.enable-remote-write-receiver" in command
    assert stack.flag("prometheus", "--config.file") == stack.container_path(
        stack.PROMETHEUS_CONFIG, "prometheus"
    )


def test_the_intervals_match_the_committed_configuration() -> None:
    committed = stack.load_yaml(stack.ROOT / "alerts" / "prometheus.yml")
    assert CONFIG["global"] == committed["global"]
    assert CONFIG["rule_files"] == committed["rule_files"]
