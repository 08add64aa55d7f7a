"""The Collector path yields the series of the scrape path, for every metric the app exports.

The app exports real OTLP protobuf to a local receiver; each metric is put through the
Collector's pipeline as otel-collector.yaml configures it (the `transform/prometheus_names`
statement, then the Prometheus exporter's translation, tests/support/prometheus_translation.py)
and compared with the app's own /metrics as Prometheus scrapes it (the scrape adds `job` and
`instance`). Rules, dashboards and runbooks select on those names and labels.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from prometheus_client.parser import text_string_to_metric_families

from telemetry.thresholds import JOB
from tests.conftest import make_settings
from tests.support.otlp_app import exporting_app, exporting_to_receiver
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

pytestmark = pytest.mark.server

SCRAPE_TARGET_LABELS = frozenset({"job", "instance"})
"""What a Prometheus scrape adds to every sample of /metrics."""


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    with exporting_to_receiver(monkeypatch) as rx:
        yield rx


async def both_paths(
    receiver: OtlpReceiver,
) -> tuple[dict[str, tuple[dict[str, Any], dict[str, str], Metric]], str]:
    """The latest export of every metric, and /metrics, after traffic that touches every
    instrument family (HTTP, cache, upstream, event loop, one slow request kept as a trace)."""
    async with exporting_app(make_settings(upstream_latency_ms=150.0)) as (client, _):
        assert (await client.get("/api/market/movers")).status_code == 200  # slow: kept
        for path in ("/api/market/movers", "/api/market/tickers/BTCUSDT", "/nowhere"):
            await client.get(path)
        await asyncio.to_thread(
            receiver.wait_for,
            lambda: (
                {"http.server.request.duration", "cache.operation.duration"}
                <= {m.name for _, _, m in receiver.scoped_metrics()}
            ),
        )
        scraped = (await client.get("/metrics")).text
    latest = {metric.name: (r, s, metric) for r, s, metric in receiver.scoped_metrics()}
    return latest, scraped


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


async def test_every_exported_metric_has_the_names_and_labels_of_the_scrape_path(
    receiver: OtlpReceiver,
) -> None:
    latest, scraped_text = await both_paths(receiver)
    scraped = {s.sample_names: s for s in scrape_path(scraped_text).values()}
    through_collector = {
        name: series(clear_unit_of_ratio_gauges(metric), resource, scope)
        for name, (resource, scope, metric) in latest.items()
    }
    assert len(through_collector) == len(scraped), "the same metrics on both paths"
    for name, collected in through_collector.items():
        direct = scraped.get(collected.sample_names)
        assert direct is not None, f"{name} -> {sorted(collected.sample_names)} not on /metrics"
        assert collected.label_sets == direct.label_sets, name


async def test_job_is_the_service_name_and_instance_the_instance_id(
    receiver: OtlpReceiver,
) -> None:
    latest, _ = await both_paths(receiver)
    for resource, _, _ in latest.values():
        assert "service.namespace" not in resource, "it would become part of `job`"
        labels = job_and_instance(resource)
        assert labels["job"] == JOB
        assert labels["instance"] == resource["service.instance.id"]


async def test_ratio_gauges_need_the_transform_to_keep_their_names(
    receiver: OtlpReceiver,
) -> None:
    """Without the transform processor the Collector would rename these gauges."""
    latest, _ = await both_paths(receiver)
    _, _, cpu = latest["process.cpu.utilization"]
    assert metric_name(cpu) == "process_cpu_utilization_ratio"
    assert metric_name(clear_unit_of_ratio_gauges(cpu)) == "process_cpu_utilization"
    _, _, breaker = latest["cache.breaker.state"]
    assert metric_name(clear_unit_of_ratio_gauges(breaker)) == "cache_breaker_state"


async def test_latency_exemplars_carry_the_trace_id_of_an_exported_trace(
    receiver: OtlpReceiver,
) -> None:
    latest, _ = await both_paths(receiver)
    _, _, duration = latest["http.server.request.duration"]
    labels = [exemplar_labels(e) for e in exemplars(duration)]
    assert labels, "the slow request left an exemplar"
    exported_traces = {span.trace_id.hex() for _, span in receiver.spans()}
    for label in labels:
        assert set(label) == {"trace_id", "span_id"}
        assert len(label["trace_id"]) == 32
        assert label["trace_id"] in exported_traces, "Grafana's trace_id link resolves in Tempo"
