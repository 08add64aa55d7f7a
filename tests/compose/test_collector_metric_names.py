"""The Collector path yields the series of the scrape path, for every metric the app exports.

The app exports real OTLP protobuf to a local receiver; each metric is put through the
Collector's pipeline as otel-collector.yaml configures it (the `transform/prometheus_names`
statement, then the Prometheus exporter's translation, tests/support/prometheus_translation.py)
and compared with the app's own /metrics as Prometheus scrapes it (the scrape adds `job` and
`instance`). Rules, dashboards and runbooks select on those names and labels.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from prometheus_client.parser import text_string_to_metric_families

from app import __version__
from app.main import create_app
from devstack.memcached import memcached_process
from telemetry.runtime import Telemetry, TelemetryConfig
from telemetry.thresholds import JOB
from tests.app.ws.live import LiveServer, client, subscribe, until
from tests.conftest import make_settings
from tests.support.otlp_app import exporting_to_receiver
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.prometheus_translation import (
    PrometheusSeries,
    clear_unit_of_ratio_gauges,
    exemplar_labels,
    exemplars,
    job_and_instance,
    metric_name,
    series,
)

pytestmark = [pytest.mark.server, pytest.mark.memcached]

SCRAPE_TARGET_LABELS = frozenset({"job", "instance"})
"""What a Prometheus scrape adds to every sample of /metrics."""
EVERY_FAMILY = {
    "http.server.request.duration",
    "cache.operation.duration",
    "db.client.connection.count",
    "upstream.request.duration",
    "websocket.session.duration",
    "websocket.connections.closed",
    "websocket.messages.sent",
    "python.event_loop.lag",
}


@dataclass(frozen=True)
class BothPaths:
    latest: dict[str, tuple[dict[str, Any], dict[str, str], Metric]]
    """The last export of each metric: (resource, scope, metric)."""
    scraped: str
    """/metrics, read after the last export."""
    exported_trace_ids: frozenset[str]
    openmetrics_content_type: str
    """What /metrics answers to a scraper asking for OpenMetrics first (as Prometheus does)."""
    openmetrics_body: str


async def drive(receiver: OtlpReceiver, memcached_address: str) -> BothPaths:
    """Traffic that touches every instrument family: HTTP (one slow request, kept as a trace),
    memcached, the upstream, a WebSocket session, the event loop."""
    settings = make_settings(
        upstream_latency_ms=150.0, ws_feed_interval=0.05, memcached_servers=memcached_address
    )
    telemetry = Telemetry(
        TelemetryConfig(service_version=__version__, keep_ratio=0.0, loop_lag_interval=0.05)
    )
    with LiveServer(settings, app=create_app(settings, telemetry=telemetry)) as server:
        async with httpx.AsyncClient(base_url=server.http, timeout=10.0) as http:
            assert (await http.get("/api/market/movers")).status_code == 200  # slow: kept
            for path in ("/api/market/movers", "/api/market/tickers/BTCUSDT", "/nowhere"):
                await http.get(path)
            async with client(server.url) as ws:
                await subscribe(ws, "tickers.BTCUSDT")
                await until(
                    lambda: server.call(
                        lambda: sum(server.manager.stats.messages_sent.values()) > 0
                    )
                )
            await until(lambda: server.call(lambda: server.manager.stats.active_connections == 0))
            await asyncio.to_thread(
                receiver.wait_for,
                lambda: {m.name for _, _, m in receiver.scoped_metrics()} >= EVERY_FAMILY,
            )
            scraped = (await http.get("/metrics")).text
            asked = await http.get(
                "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
            )
    latest = {metric.name: (r, s, metric) for r, s, metric in receiver.scoped_metrics()}
    traces = frozenset(span.trace_id.hex() for _, span in receiver.spans())
    return BothPaths(latest, scraped, traces, asked.headers["content-type"], asked.text)


@pytest.fixture(scope="module")
def paths() -> Iterator[BothPaths]:
    with (
        pytest.MonkeyPatch.context() as monkeypatch,
        exporting_to_receiver(monkeypatch) as receiver,
        tempfile.TemporaryDirectory() as tmp,
        memcached_process(log_path=Path(tmp) / "memcached.log") as memcached,
    ):
        yield asyncio.run(drive(receiver, memcached.address))


def scrape_path(text: str) -> dict[str, PrometheusSeries]:
    """/metrics as Prometheus stores it: empty labels dropped, job and instance added."""
    found = {}
    for family in text_string_to_metric_families(text):
        if family.name == "target_info":
            continue  # resource attributes: a different series on each path, joined on job
        label_sets = frozenset(
            frozenset({k for k, v in s.labels.items() if v != ""} - {"le"}) | SCRAPE_TARGET_LABELS
            for s in family.samples
        )
        names = frozenset(s.name for s in family.samples)
        found[family.name] = PrometheusSeries(family.name, names, label_sets)
    return found


def test_every_exported_metric_has_the_names_and_labels_of_the_scrape_path(
    paths: BothPaths,
) -> None:
    scraped = {s.sample_names: s for s in scrape_path(paths.scraped).values()}
    through_collector = {
        name: series(clear_unit_of_ratio_gauges(metric), resource, scope)
        for name, (resource, scope, metric) in paths.latest.items()
    }
    assert set(through_collector) >= EVERY_FAMILY
    assert len(through_collector) == len(scraped), "the same metrics on both paths"
    for name, collected in through_collector.items():
        direct = scraped.get(collected.sample_names)
        assert direct is not None, f"{name} -> {sorted(collected.sample_names)} not on /metrics"
        assert collected.label_sets == direct.label_sets, name


def test_job_is_the_service_name_and_instance_the_instance_id(paths: BothPaths) -> None:
    for resource, _, _ in paths.latest.values():
        assert "service.namespace" not in resource, "it would become part of `job`"
        labels = job_and_instance(resource)
        assert labels["job"] == JOB
        assert labels["instance"] == resource["service.instance.id"]


def test_ratio_gauges_need_the_transform_to_keep_their_names(paths: BothPaths) -> None:
    """Without the transform processor the Collector would rename these gauges."""
    _, _, cpu = paths.latest["process.cpu.utilization"]
    assert metric_name(cpu) == "process_cpu_utilization_ratio"
    assert metric_name(clear_unit_of_ratio_gauges(cpu)) == "process_cpu_utilization"
    _, _, breaker = paths.latest["cache.breaker.state"]
    assert metric_name(clear_unit_of_ratio_gauges(breaker)) == "cache_breaker_state"


def test_latency_exemplars_carry_the_trace_id_of_an_exported_trace(paths: BothPaths) -> None:
    _, _, duration = paths.latest["http.server.request.duration"]
    labels = [exemplar_labels(e) for e in exemplars(duration)]
    assert labels, "the slow request left an exemplar"
    for label in labels:
        assert set(label) == {"trace_id", "span_id"}
        assert len(label["trace_id"]) == 32
        assert label["trace_id"] in paths.exported_trace_ids, "the trace_id link resolves"


def test_exemplars_reach_prometheus_only_through_the_collector(paths: BothPaths) -> None:
    """/metrics answers in the Prometheus text format, which has no exemplars, whatever the
    scraper asks: the `trace_id` exemplars Grafana links come from the Collector's OpenMetrics
    (and Tempo's span metrics), so the Compose stack scrapes the Collector for the series."""
    assert paths.openmetrics_content_type.startswith("text/plain")
    assert " # {" not in paths.openmetrics_body
    assert "trace_id" not in paths.openmetrics_body
