"""The OTLP path, decoded from real protobuf by a local OTLP/HTTP receiver."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from prometheus_client.parser import text_string_to_metric_families

from app import __version__
from telemetry.instruments import HTTP_DURATION_BUCKETS
from tests.conftest import make_settings
from tests.support.otlp_app import exporting_app, exporting_to_receiver
from tests.support.otlp_receiver import OtlpReceiver
from tests.support.prometheus_translation import clear_unit_of_ratio_gauges, metric_name

pytestmark = pytest.mark.server


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    with exporting_to_receiver(monkeypatch) as rx:
        yield rx


async def test_kept_traces_metrics_and_exemplars_arrive(receiver: OtlpReceiver) -> None:
    settings = make_settings(upstream_latency_ms=150.0)
    async with exporting_app(settings) as (client, _):
        assert (await client.get("/api/market/movers")).status_code == 200  # slow: cold cache
        for _ in range(20):
            assert (await client.get("/api/market/movers")).status_code == 200  # fast: dropped
        await asyncio.to_thread(
            receiver.wait_for,
            lambda: any(s.name == "GET /api/market/movers" for _, s in receiver.spans()),
        )
        await asyncio.to_thread(
            receiver.wait_for,
            lambda: (
                {"http.server.request.duration", "python.event_loop.lag"}
                <= {m.name for _, m in receiver.metric_list()}
            ),
        )
        prometheus_text = (await client.get("/metrics")).text

    roots = [s for _, s in receiver.spans() if s.name == "GET /api/market/movers"]
    assert len(roots) == 1, "only the slow request is exported"
    root = roots[0]
    children = {s.name for _, s in receiver.spans() if s.trace_id == root.trace_id}
    assert {"cache.get api", "cache.get market", "upstream GET /tickers"} <= children

    resource, _ = next(receiver.spans())
    assert resource["service.name"] == "market-api"
    assert resource["service.version"] == __version__
    assert resource["service.instance.id"]
    assert resource["telemetry.sdk.language"] == "python"

    latest: dict[str, Metric] = {}
    for _, metric in receiver.metric_list():
        latest[metric.name] = metric
    duration = latest["http.server.request.duration"]
    assert duration.unit == "s"
    points = duration.histogram.data_points
    movers = [
        p for p in points if any(a.value.string_value == "/api/market/movers" for a in p.attributes)
    ]
    assert list(movers[0].explicit_bounds) == list(HTTP_DURATION_BUCKETS)
    exemplar_traces = {e.trace_id for p in movers for e in p.exemplars}
    assert exemplar_traces == {root.trace_id}, "exemplars point only at the exported trace"

    for name, unit in [
        ("cache.requests", "{request}"),
        ("cache.operation.duration", "s"),
        ("process.memory.usage", "By"),
        ("python.event_loop.lag", "s"),
        ("upstream.requests", "{request}"),
    ]:
        assert latest[name].unit == unit, name

    # Same names on both paths: translate OTLP names the way the Collector does
    # (tests/compose/test_collector_metric_names.py compares the label sets too).
    scraped = {s.name for f in text_string_to_metric_families(prometheus_text) for s in f.samples}
    for name, exported in latest.items():
        translated = metric_name(clear_unit_of_ratio_gauges(exported))
        assert translated in scraped or f"{translated}_count" in scraped, (
            f"{name} -> {translated} missing from /metrics"
        )


async def test_resource_follows_otel_variables(
    receiver: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "market-api-canary")
    monkeypatch.setenv(
        "OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=ci,service.namespace=trading"
    )
    async with exporting_app(make_settings(), keep_ratio=1.0) as (client, _):
        await client.get("/api/market/tickers/BTCUSDT")
        await asyncio.to_thread(receiver.wait_for, lambda: bool(receiver.traces))
        text = (await client.get("/metrics")).text
    resource, _ = next(receiver.spans())
    assert resource["service.name"] == "market-api-canary"
    assert resource["deployment.environment.name"] == "ci"
    assert 'service_name="market-api-canary"' in text
