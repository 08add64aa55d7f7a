"""The one place telemetry/runtime.py leans on a private OpenTelemetry SDK method.

`_MergingPrometheusReader` overrides `MetricReader._receive_metrics`, the hook the SDK calls with
each collection, to append the hot-path histograms. The method is private: an SDK release may
rename it or change its arguments, and then the override would silently never run and the
request-duration histogram would vanish from `/metrics`. These tests make that upgrade fail.
"""

from __future__ import annotations

import inspect

import pytest
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.sdk.metrics.export import MetricReader, MetricsData
from opentelemetry.util.types import AttributeValue
from prometheus_client.parser import text_string_to_metric_families

from app import __version__
from telemetry import runtime
from telemetry.runtime import Telemetry, TelemetryConfig


@pytest.mark.parametrize("cls", [MetricReader, PrometheusMetricReader])
def test_the_sdk_hook_has_the_signature_the_override_expects(cls: type[MetricReader]) -> None:
    method = cls.__dict__.get("_receive_metrics") or getattr(cls, "_receive_metrics", None)
    assert method is not None, f"{cls.__name__}._receive_metrics is gone"
    params = list(inspect.signature(method).parameters.values())
    assert [p.name for p in params] == ["self", "metrics_data", "timeout_millis", "kwargs"]
    assert params[2].default == 10_000
    assert params[3].kind is inspect.Parameter.VAR_KEYWORD


def test_collect_still_hands_its_data_to_the_hook() -> None:
    # The SDK's own collect() must call the hook by this name, or overriding it does nothing.
    assert "self._receive_metrics(" in inspect.getsource(MetricReader.collect)


async def test_hot_path_histograms_reach_metrics_through_the_override(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    received: list[MetricsData] = []
    override = runtime._MergingPrometheusReader._receive_metrics

    def spy(
        self: runtime._MergingPrometheusReader,
        metrics_data: MetricsData,
        timeout_millis: float = 10_000,
        **kwargs: object,
    ) -> None:
        received.append(metrics_data)
        override(self, metrics_data, timeout_millis, **kwargs)

    monkeypatch.setattr(runtime._MergingPrometheusReader, "_receive_metrics", spy)
    telemetry = Telemetry(TelemetryConfig(service_version=__version__), span_sink=lambda _: None)
    telemetry.start()
    try:
        attributes: dict[str, AttributeValue] = {
            "http.request.method": "GET",
            "http.route": "/api/market/movers",
            "http.response.status_code": 200,
        }
        histogram = telemetry.instruments.http_duration
        histogram.record(0.042, ("GET", "/api/market/movers", 200), attributes)
        text = telemetry.prometheus_text().decode()
    finally:
        await telemetry.shutdown()
    assert len(received) == 1, "the SDK did not call the override"
    families = {f.name: f for f in text_string_to_metric_families(text)}
    family = families["http_server_request_duration_seconds"]
    counts = [s.value for s in family.samples if s.name.endswith("_count")]
    assert counts == [1.0]
    [bucket] = [
        s.value for s in family.samples if s.name.endswith("_bucket") and s.labels["le"] == "0.05"
    ]
    assert bucket == 1.0
