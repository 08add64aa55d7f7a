"""The Compose Prometheus configuration in a real Prometheus, against the real app and a
stand-in for the Collector's Prometheus exporter.

The stand-in serves, in OpenMetrics (prometheus_client's writer), what the exporter serves for
the app: series already labelled `job`/`instance` from the resource, a latency histogram with a
`trace_id` exemplar, a counter with its `_created` line. Only the addresses and intervals of
alerts/prometheus.compose.yml are changed, so what this proves is what the file says: the direct
job contributes `up` and nothing else, the Collector job keeps the exporter's `job` and
`instance`, exemplars are stored, `_created` series are not, and the rules record from the
Collector path.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.metrics_core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.samples import Exemplar

from devstack.process import free_port
from devstack.prometheus import RULES_DIR, prometheus_process
from telemetry.instruments import HTTP_DURATION_BUCKETS
from telemetry.thresholds import CACHE_REQUESTS_RATE, JOB
from tests.app.ws.live import LiveServer
from tests.compose import stack
from tests.conftest import make_settings

pytestmark = [pytest.mark.prometheus, pytest.mark.server]

INSTANCE = "0f8e4c1a-6b1d-4c55-9a52-3f1f2e0d9c7b"
"""A service.instance.id, as the app's SDK generates them."""
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"
SCRAPE_SERIES = {
    "up",
    "scrape_duration_seconds",
    "scrape_samples_scraped",
    "scrape_samples_post_metric_relabeling",
    "scrape_series_added",
}
"""What Prometheus synthesizes for every target, after metric relabelling."""


class ExporterStandIn:
    """prometheus_client collector shaped like the Collector's exporter output for the app."""

    def __init__(self) -> None:
        self.scrapes = 0

    def collect(self) -> Iterator[Metric]:
        self.scrapes += 1
        base = {"job": JOB, "instance": INSTANCE, "otel_scope_name": "market-api"}
        route = {**base, "http_request_method": "GET", "http_route": "/api/market/movers"}
        histogram = HistogramMetricFamily(
            "http_server_request_duration_seconds", "Duration of HTTP requests.", labels=list(route)
        )
        slow = Exemplar({"trace_id": TRACE_ID, "span_id": SPAN_ID}, 0.3, time.time())
        buckets: list[Any] = [(repr(b), self.scrapes) for b in HTTP_DURATION_BUCKETS]
        buckets[HTTP_DURATION_BUCKETS.index(0.5)] = ("0.5", self.scrapes, slow)
        buckets.append(("+Inf", self.scrapes))
        histogram.add_metric(list(route.values()), buckets, sum_value=0.3 * self.scrapes)
        yield histogram
        hits = {
            **base,
            "cache_namespace": "market",
            "cache_result": "hit",
            "cache_backend": "memory",
        }
        counter = CounterMetricFamily("cache_requests", "Cache reads by result.", labels=list(hits))
        counter.add_metric(list(hits.values()), 10.0 * self.scrapes, created=time.time() - 60)
        yield counter


@pytest.fixture
def exporter() -> Iterator[tuple[int, ExporterStandIn]]:
    registry = CollectorRegistry()
    stand_in = ExporterStandIn()
    registry.register(stand_in)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    try:
        yield port, stand_in
    finally:
        server.shutdown()
        thread.join(5)


def local_copy(app_port: int, exporter_port: int, dest: Path) -> Path:
    """The Compose configuration with local addresses, 1 s intervals and absolute rules."""
    text = stack.PROMETHEUS_CONFIG.read_text()
    for old, new in [
        ('"app:8000"', f'"127.0.0.1:{app_port}"'),
        ('"otel-collector:9464"', f'"127.0.0.1:{exporter_port}"'),
        ('"alertmanager:9093"', f'"127.0.0.1:{free_port()}"'),
        ("  scrape_interval: 15s\n", "  scrape_interval: 1s\n"),
        ("  evaluation_interval: 15s\n", "  evaluation_interval: 1s\n"),
        ("  - rules/*.rules.yml\n", f'  - "{RULES_DIR}/*.rules.yml"\n'),
    ]:
        assert text.count(old) == 1, old
        text = text.replace(old, new)
    dest.write_text(text)
    return dest


def query(prometheus: httpx.Client, promql: str) -> list[dict[str, Any]]:
    response = prometheus.get("/api/v1/query", params={"query": promql})
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def test_both_jobs_give_the_rules_their_series(exporter: tuple[int, ExporterStandIn]) -> None:
    exporter_port, stand_in = exporter
    settings = make_settings(gc_freeze=False, ws_feed_interval=3600.0)
    with LiveServer(settings) as app, tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = local_copy(app.port, exporter_port, root / "prometheus.yml")
        process = prometheus_process(config, root / "data", log_path=root / "prometheus.log")
        with process, httpx.Client(base_url=process.url, timeout=5.0) as prometheus:
            deadline = time.monotonic() + 60
            while not query(prometheus, f'{CACHE_REQUESTS_RATE}{{job="{JOB}"}}'):
                assert time.monotonic() < deadline, process.tail()
                time.sleep(0.2)

            [up] = query(prometheus, f'up{{job="{JOB}"}}')
            assert up["metric"]["instance"] == f"127.0.0.1:{app.port}"
            assert up["value"][1] == "1"
            direct = query(prometheus, f'count by (__name__) ({{instance="127.0.0.1:{app.port}"}})')
            assert {s["metric"]["__name__"] for s in direct} == SCRAPE_SERIES

            buckets = query(
                prometheus, f'http_server_request_duration_seconds_bucket{{job="{JOB}"}}'
            )
            assert buckets
            assert {b["metric"]["instance"] for b in buckets} == {INSTANCE}
            assert query(prometheus, '{__name__=~".+_created"}') == []

            exemplars = prometheus.get(
                "/api/v1/query_exemplars",
                params={
                    "query": f'http_server_request_duration_seconds_bucket{{job="{JOB}"}}',
                    "start": time.time() - 300,
                    "end": time.time() + 60,
                },
            ).json()["data"]
            labels = [e["labels"] for series in exemplars for e in series["exemplars"]]
            assert {"trace_id": TRACE_ID, "span_id": SPAN_ID} in labels
            assert stand_in.scrapes >= 2
