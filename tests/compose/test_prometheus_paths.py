"""The Compose Prometheus configuration in a real Prometheus, against the real app and a
stand-in for the Collector's Prometheus exporter.

Two app replicas run. The stand-in serves, in OpenMetrics (prometheus_client's writer), what the
exporter serves for them: series already labelled `job`/`instance` from each replica's resource
(`service.instance.id` as telemetry/instance.py names a replica), a latency histogram with a
`trace_id` exemplar, a counter with its `_created` line. Only the addresses and intervals of
alerts/prometheus.compose.yml are changed (Docker's DNS answer for `app` becomes the replicas'
addresses), so what this proves is what the file says: the direct job contributes `up` and
nothing else, one target per replica, the Collector job keeps the exporter's `job` and
`instance`, so each replica's `up` and its series share one `instance`; exemplars are stored,
`_created` series are not, and the rules record from the Collector path.
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
from telemetry.fleet_thresholds import REPLICAS_UP
from telemetry.instance import scrape_instance
from telemetry.instruments import HTTP_DURATION_BUCKETS
from telemetry.thresholds import CACHE_REQUESTS_RATE, JOB
from tests.app.ws.live import LiveServer
from tests.compose import stack
from tests.conftest import make_settings

pytestmark = [pytest.mark.prometheus, pytest.mark.server]

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"


class ExporterStandIn:
    """prometheus_client collector shaped like the Collector's exporter output for the app."""

    def __init__(self) -> None:
        self.scrapes = 0
        self.instances: list[str] = []
        """service.instance.id of each replica exporting through the Collector."""

    def collect(self) -> Iterator[Metric]:
        self.scrapes += 1
        for instance in self.instances:
            yield from self.replica(instance)

    def replica(self, instance: str) -> Iterator[Metric]:
        base = {"job": JOB, "instance": instance, "otel_scope_name": "market-api"}
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


DNS_DISCOVERY = """\
    dns_sd_configs:
      - names: ["app"]
        type: A
        port: 8000
        refresh_interval: 15s
"""


def local_copy(replicas: list[str], exporter_port: int, dest: Path) -> Path:
    """The Compose configuration with local addresses (`replicas` in place of what Docker's DNS
    answers for `app`), 1 s intervals and absolute rules."""
    text = stack.PROMETHEUS_CONFIG.read_text()
    targets = ", ".join(f'"{replica}"' for replica in replicas)
    for old, new in [
        (DNS_DISCOVERY, f"    static_configs:\n      - targets: [{targets}]\n"),
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
    with (
        LiveServer(settings) as first,
        LiveServer(settings) as second,
        tempfile.TemporaryDirectory() as tmp,
    ):
        replicas = [f"127.0.0.1:{app.port}" for app in (first, second)]
        # Each replica's service.instance.id, as the app derives it from where it listens.
        assert [scrape_instance("127.0.0.1", app.port) for app in (first, second)] == replicas
        stand_in.instances = replicas
        root = Path(tmp)
        config = local_copy(replicas, exporter_port, root / "prometheus.yml")
        process = prometheus_process(config, root / "data", log_path=root / "prometheus.log")
        with process, httpx.Client(base_url=process.url, timeout=5.0) as prometheus:
            deadline = time.monotonic() + 60
            while not query(prometheus, f'{CACHE_REQUESTS_RATE}{{job="{JOB}"}}'):
                assert time.monotonic() < deadline, process.tail()
                time.sleep(0.2)

            ups = query(prometheus, f'up{{job="{JOB}"}}')
            assert sorted(up["metric"]["instance"] for up in ups) == sorted(replicas)
            assert {up["value"][1] for up in ups} == {"1"}
            # Each replica's own scrape reads its /metrics and keeps none of it: its series
            # with that `instance` came through the Collector job.
            kept = query(prometheus, f'scrape_samples_post_metric_relabeling{{job="{JOB}"}}')
            assert {s["metric"]["instance"]: s["value"][1] for s in kept} == dict.fromkeys(
                replicas, "0"
            )
            read = query(prometheus, f'scrape_samples_scraped{{job="{JOB}"}} > 0')
            assert len(read) == len(replicas)

            buckets = query(
                prometheus, f'http_server_request_duration_seconds_bucket{{job="{JOB}"}}'
            )
            assert {b["metric"]["instance"] for b in buckets} == set(replicas)
            joined = query(
                prometheus,
                f'count by (instance) (http_server_request_duration_seconds_count{{job="{JOB}"}}'
                f' and on (instance) up{{job="{JOB}"}} == 1)',
            )
            assert sorted(s["metric"]["instance"] for s in joined) == sorted(replicas)
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

            # The fleet rules count both replicas (evaluated every second here).
            deadline = time.monotonic() + 30
            while not query(prometheus, f'{REPLICAS_UP}{{job="{JOB}"}} == 2'):
                assert time.monotonic() < deadline, process.tail()
                time.sleep(0.2)
