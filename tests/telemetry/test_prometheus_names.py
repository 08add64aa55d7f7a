"""`/metrics` parsed with prometheus_client's parser: names and label sets of the conventions."""

from __future__ import annotations

import asyncio

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import make_settings
from tests.telemetry.conftest import traced_app

SCOPE_LABELS = {"otel_scope_name", "otel_scope_version", "otel_scope_schema_url"}

EXPECTED: dict[str, tuple[str, set[str]]] = {
    # family name: (type, labels besides the scope labels and `le`)
    "http_server_request_duration_seconds": (
        "histogram",
        {"http_request_method", "http_route", "http_response_status_code"},
    ),
    "http_server_active_requests": ("gauge", {"http_request_method"}),
    "cache_requests": ("counter", {"cache_namespace", "cache_result", "cache_backend"}),
    "cache_operation_duration_seconds": ("histogram", {"cache_operation", "cache_backend"}),
    "cache_breaker_state": ("gauge", set()),
    "upstream_requests": ("counter", {"upstream_endpoint", "outcome"}),
    "upstream_request_duration_seconds": ("histogram", {"upstream_endpoint", "outcome"}),
    "process_memory_usage_bytes": ("gauge", set()),
    "process_cpu_utilization": ("gauge", set()),
    "process_open_file_descriptor_count": ("gauge", set()),
    "python_event_loop_lag_seconds": ("histogram", set()),
}


async def test_names_types_and_label_sets() -> None:
    async with traced_app(make_settings()) as t:
        await t.client.get("/api/market/movers")
        await t.client.get("/api/market/tickers/BTCUSDT")
        await asyncio.sleep(0.12)  # a couple of event-loop lag probes
        text = (await t.client.get("/metrics")).text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    for name, (kind, labels) in EXPECTED.items():
        assert name in families, f"{name} missing"
        family = families[name]
        assert family.type == kind, (name, family.type)
        for sample in family.samples:
            got = set(sample.labels) - SCOPE_LABELS - {"le"}
            assert got == labels, (sample.name, got)
    (info,) = families["target_info"].samples
    assert info.labels["service_name"] == "market-api"
    assert info.labels["service_instance_id"]
    counters = [s.name for s in families["cache_requests"].samples]
    assert all(n == "cache_requests_total" for n in counters)
