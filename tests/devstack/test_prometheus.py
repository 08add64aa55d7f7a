from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from devstack.process import free_port
from devstack.prometheus import (
    PROMETHEUS_CONFIG,
    RULES_DIR,
    prometheus_process,
    render_prometheus_config,
    write_prometheus_config,
)
from telemetry.fleet_thresholds import FLEET_RECORDING_RULES, FLEET_THRESHOLDS
from telemetry.thresholds import RECORDING_RULES, THRESHOLDS
from tests.app.ws.live import LiveServer
from tests.conftest import make_settings


def rendered(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {"app_target": "127.0.0.1:18000", "alertmanager": "127.0.0.1:19093"}
    values.update(overrides)
    parsed: dict[str, Any] = yaml.safe_load(render_prometheus_config(**values))
    return parsed


def test_committed_config_scrapes_the_job_named_after_the_service() -> None:
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    [job] = config["scrape_configs"]
    assert job["job_name"] == "market-api"
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"] == [{"targets": ["127.0.0.1:8000"]}]
    assert config["rule_files"] == ["rules/*.rules.yml"]
    [alertmanagers] = config["alerting"]["alertmanagers"]
    assert alertmanagers == {"static_configs": [{"targets": ["127.0.0.1:9093"]}]}


def test_rendering_replaces_only_addresses_rules_and_intervals(tmp_path: Path) -> None:
    committed = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    copy = rendered(scrape_interval="1s", evaluation_interval="1s")
    job = copy["scrape_configs"][0]
    alertmanagers = copy["alerting"]["alertmanagers"][0]
    assert job["static_configs"] == [{"targets": ["127.0.0.1:18000"]}]
    assert alertmanagers["static_configs"] == [{"targets": ["127.0.0.1:19093"]}]
    assert copy["rule_files"] == [str(RULES_DIR / "*.rules.yml")]
    assert copy["global"] == {"scrape_interval": "1s", "evaluation_interval": "1s"}
    # Put the committed values back: nothing else differs.
    job["static_configs"] = committed["scrape_configs"][0]["static_configs"]
    alertmanagers["static_configs"] = committed["alerting"]["alertmanagers"][0]["static_configs"]
    copy["rule_files"] = committed["rule_files"]
    copy["global"] = committed["global"]
    assert copy == committed

    other_rules = tmp_path / "short.rules.yml"
    assert rendered(rule_files=[other_rules])["rule_files"] == [str(other_rules)]
    assert rendered()["global"] == committed["global"]


@pytest.mark.parametrize(
    "overrides",
    [
        {"app_target": "127.0.0.1"},
        {"app_target": '127.0.0.1:1"]\n  - x'},
        {"alertmanager": "alertmanager"},
        {"scrape_interval": "1 s"},
        {"evaluation_interval": "0s"},
        {"rule_files": []},
    ],
    ids=["no-port", "yaml-injection", "am-no-port", "bad-interval", "zero-interval", "no-rules"],
)
def test_rendering_refuses_bad_values(overrides: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        rendered(**overrides)


def test_rendering_needs_each_placeholder_once(tmp_path: Path) -> None:
    source = tmp_path / "prometheus.yml"
    source.write_text(PROMETHEUS_CONFIG.read_text().replace('"127.0.0.1:8000"', "app:8000"))
    with pytest.raises(ValueError, match="exactly once"):
        render_prometheus_config(
            app_target="127.0.0.1:1", alertmanager="127.0.0.1:2", source=source
        )


@pytest.fixture
def live_app() -> Iterator[LiveServer]:
    with LiveServer(make_settings(gc_freeze=False, ws_feed_interval=3600.0)) as server:
        yield server


def query(prometheus: httpx.Client, promql: str) -> list[dict[str, Any]]:
    response = prometheus.get("/api/v1/query", params={"query": promql})
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


@pytest.mark.prometheus
@pytest.mark.server
def test_prometheus_scrapes_the_app_and_records_the_rules(live_app: LiveServer) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = write_prometheus_config(
            root / "prometheus.yml",
            app_target=f"127.0.0.1:{live_app.port}",
            alertmanager=f"127.0.0.1:{free_port()}",
            scrape_interval="1s",
            evaluation_interval="1s",
        )
        process = prometheus_process(config, root / "data", log_path=root / "prometheus.log")
        with process, httpx.Client(base_url=process.url, timeout=5.0) as prometheus:
            flags = prometheus.get("/api/v1/status/flags").json()["data"]
            assert "exemplar-storage" in flags["enable-feature"]

            groups = prometheus.get("/api/v1/rules").json()["data"]["groups"]
            names = {group["name"]: [rule["name"] for rule in group["rules"]] for group in groups}
            assert names == {
                "market-api": [r.record for r in RECORDING_RULES] + [t.alert for t in THRESHOLDS],
                "market-api-fleet": [r.record for r in FLEET_RECORDING_RULES]
                + [t.alert for t in FLEET_THRESHOLDS],
            }

            deadline = time.monotonic() + 60
            recorded: list[dict[str, Any]] = []
            with httpx.Client(base_url=live_app.http) as app:
                while not recorded:
                    assert time.monotonic() < deadline, process.tail()
                    app.get("/api/market/movers").raise_for_status()
                    recorded = query(prometheus, 'job:cache_requests:rate5m{job="market-api"}')
                    time.sleep(0.2)
            assert recorded[0]["metric"] == {
                "__name__": "job:cache_requests:rate5m",
                "job": "market-api",
            }
            [up] = query(prometheus, 'up{job="market-api"}')
            assert up["metric"]["instance"] == f"127.0.0.1:{live_app.port}"
            assert up["value"][1] == "1"
            ratio = query(prometheus, "job:cache_hits_per_cache_requests:ratio_rate5m")
            assert [r["metric"]["job"] for r in ratio] == ["market-api"]
