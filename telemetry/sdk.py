"""The OpenTelemetry SDK objects of one app, built together from the standard `OTEL_*` variables:
`OTEL_SDK_DISABLED`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]ENDPOINT` (OTLP/HTTP export only when one is set),
`OTEL_TRACES_EXPORTER`/`OTEL_METRICS_EXPORTER=none`, `OTEL_TRACES_SAMPLER[_ARG]`,
`OTEL_METRIC_EXPORT_INTERVAL`/`_TIMEOUT`, `OTEL_BSP_*`, `OTEL_METRICS_EXEMPLAR_FILTER`.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import Meter
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    MetricReader,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.resources import OTELResourceDetector, Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import Tracer
from prometheus_client import CollectorRegistry

from telemetry.export import (
    CountingMetricExporter,
    ExportStats,
    SpanExportWorker,
    rate_limit_sdk_logs,
)
from telemetry.histograms import FastHistograms
from telemetry.instruments import Instruments, hot_path_histograms
from telemetry.roots import LocalRoots
from telemetry.tracing import KeptTraceExemplarFilter, SlowTraceKeeper, SpanSink

DEFAULT_SERVICE_NAME = "market-api"


def sdk_disabled() -> bool:
    return os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def _env_set(*names: str) -> bool:
    return any(os.environ.get(n, "").strip() for n in names)


def _exporter_enabled(signal: str) -> bool:
    """An OTLP exporter runs only with an endpoint configured and the exporter not `none`."""
    choice = os.environ.get(f"OTEL_{signal.upper()}_EXPORTER", "otlp").strip().lower()
    endpoint = _env_set(
        "OTEL_EXPORTER_OTLP_ENDPOINT", f"OTEL_EXPORTER_OTLP_{signal.upper()}_ENDPOINT"
    )
    return endpoint and "otlp" in choice.split(",")


def build_resource(service_version: str, instance_id: str | None = None) -> Resource:
    """Defaults first, then whatever OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES say.

    `instance_id` (telemetry/instance.py: the address Prometheus scrapes this process at)
    replaces the SDK's random `service.instance.id`, unless the environment sets one."""
    attributes: dict[str, str | int] = {
        "service.name": DEFAULT_SERVICE_NAME,
        "service.version": service_version,
        "deployment.environment.name": "development",
        "host.name": platform.node(),
        "process.pid": os.getpid(),
    }
    if instance_id:
        attributes["service.instance.id"] = instance_id
    attributes.update(OTELResourceDetector().detect().attributes)  # type: ignore[arg-type]
    return Resource.create(attributes)


@dataclass(frozen=True)
class TelemetryConfig:
    service_version: str
    keep_slower_than_ms: float = 100.0
    keep_ratio: float = 0.001
    loop_lag_interval: float = 0.25
    max_pending_traces: int = 2048
    window_interval: float = 15.0
    """Seconds between snapshots behind `/bottlenecks` (5-minute rates, 1-hour RSS trend)."""
    instance_id: str | None = None
    """`service.instance.id` unless OTEL_RESOURCE_ATTRIBUTES sets it; None keeps the SDK's UUID."""


@dataclass(frozen=True)
class SdkPipeline:
    """The OpenTelemetry objects of one app, built together because each needs the others: the
    keeper is the tracer provider's span processor and the meter provider's exemplar filter, the
    Prometheus reader merges the hot-path histograms the instruments record into."""

    resource: Resource
    keeper: SlowTraceKeeper
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    tracer: Tracer
    meter: Meter
    roots: LocalRoots
    instruments: Instruments
    registry: CollectorRegistry
    export_stats: ExportStats
    span_worker: SpanExportWorker | None


def build_sdk_pipeline(
    config: TelemetryConfig,
    *,
    span_exporter: SpanExporter | None = None,
    span_sink: SpanSink | None = None,
    metric_readers: Sequence[MetricReader] = (),
) -> SdkPipeline:
    """Providers, readers and exporters for `config`, as the `OTEL_*` variables say.

    The SDK's periodic OTLP metric reader and the span export worker start their threads when
    built (only with an OTLP endpoint configured): they send nothing the app has not recorded.
    """
    rate_limit_sdk_logs()
    resource = build_resource(config.service_version, config.instance_id)
    export_stats = ExportStats()
    exporter = span_exporter
    if exporter is None and span_sink is None and _exporter_enabled("traces"):
        exporter = OTLPSpanExporter()
    span_worker = (
        SpanExportWorker(exporter, export_stats)
        if span_sink is None and exporter is not None
        else None
    )
    sink = span_sink or (span_worker.submit if span_worker is not None else _discard)
    keeper = SlowTraceKeeper(
        sink,
        resource=resource,
        slower_than_ms=config.keep_slower_than_ms,
        ratio=config.keep_ratio,
        max_pending_traces=config.max_pending_traces,
    )
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    tracer_provider.add_span_processor(keeper)
    scope = InstrumentationScope(DEFAULT_SERVICE_NAME, config.service_version)
    roots = LocalRoots(keeper, tracer_provider.sampler, resource, scope)

    hot = hot_path_histograms()
    fast = FastHistograms(scope, hot)
    registry = CollectorRegistry(auto_describe=True)
    readers: list[MetricReader] = [
        _MergingPrometheusReader(fast, registry=registry),
        *metric_readers,
    ]
    if _exporter_enabled("metrics"):
        readers.append(
            PeriodicExportingMetricReader(
                CountingMetricExporter(
                    OTLPMetricExporter(), export_stats, transform=fast.merge_into
                )
            )
        )
    exemplar_filter = (
        None if _env_set("OTEL_METRICS_EXEMPLAR_FILTER") else KeptTraceExemplarFilter(keeper)
    )
    meter_provider = MeterProvider(
        metric_readers=readers,
        resource=resource,
        exemplar_filter=exemplar_filter,
        shutdown_on_exit=False,
    )
    meter = meter_provider.get_meter(DEFAULT_SERVICE_NAME, config.service_version)
    return SdkPipeline(
        resource=resource,
        keeper=keeper,
        tracer_provider=tracer_provider,
        meter_provider=meter_provider,
        tracer=tracer_provider.get_tracer(DEFAULT_SERVICE_NAME, config.service_version),
        meter=meter,
        roots=roots,
        instruments=Instruments.create(meter, hot),
        registry=registry,
        export_stats=export_stats,
        span_worker=span_worker,
    )


def _discard(_: Sequence[ReadableSpan]) -> None:
    return None


class _MergingPrometheusReader(PrometheusMetricReader):
    """The Prometheus reader, with the hot-path histograms merged into each collection."""

    def __init__(self, fast: FastHistograms, registry: CollectorRegistry) -> None:
        super().__init__(registry=registry)
        self._fast = fast

    def _receive_metrics(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object
    ) -> None:
        if metrics_data is not None:
            metrics_data = self._fast.merge_into(metrics_data)
        super()._receive_metrics(metrics_data, timeout_millis, **kwargs)
