"""The telemetry pipeline of one app: providers, readers, exporters and the hooks handed to `app`.

Built per app (no global providers), so tests can run several apps in one process. Nothing starts
a thread until `start()` runs in the lifespan. Configuration follows the standard `OTEL_*`
variables: `OTEL_SDK_DISABLED`, `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_EXPORTER_OTLP_[TRACES_|METRICS_]ENDPOINT` (OTLP/HTTP export only when one is set),
`OTEL_TRACES_EXPORTER`/`OTEL_METRICS_EXPORTER=none`, `OTEL_TRACES_SAMPLER[_ARG]`,
`OTEL_METRIC_EXPORT_INTERVAL`/`_TIMEOUT`, `OTEL_BSP_*`, `OTEL_METRICS_EXEMPLAR_FILTER`.
"""

from __future__ import annotations

import asyncio
import os
import platform
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import CallbackOptions, Meter, Observation
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

from app.cache.manager import CacheManager
from app.upstream.client import ExchangeClient
from app.ws.stats import WebSocketStats
from telemetry.bottlenecks import Check, evaluate
from telemetry.cache import CacheTelemetry, register_cache_observers
from telemetry.export import (
    CountingMetricExporter,
    ExportStats,
    SpanExportWorker,
    rate_limit_sdk_logs,
)
from telemetry.histograms import FastHistograms
from telemetry.instruments import Instruments, hot_path_histograms
from telemetry.process import EventLoopLagMonitor, ProcessSampler, register_process_observers
from telemetry.roots import LocalRoots
from telemetry.tracing import KeptTraceExemplarFilter, SlowTraceKeeper, SpanSink
from telemetry.upstream import InstrumentedExchange
from telemetry.websocket import WebSocketTelemetry, register_websocket_observers
from telemetry.window import RecentWindow, Snapshot

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


def build_resource(service_version: str) -> Resource:
    """Defaults first, then whatever OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES say."""
    attributes: dict[str, str | int] = {
        "service.name": DEFAULT_SERVICE_NAME,
        "service.version": service_version,
        "deployment.environment.name": "development",
        "host.name": platform.node(),
        "process.pid": os.getpid(),
    }
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


class Telemetry:
    """Everything telemetry for one app; `start()` in the lifespan, `shutdown()` at its end."""

    def __init__(
        self,
        config: TelemetryConfig,
        *,
        span_exporter: SpanExporter | None = None,
        span_sink: SpanSink | None = None,
        metric_readers: Sequence[MetricReader] = (),
    ) -> None:
        """`span_exporter` replaces the OTLP exporter; `span_sink` bypasses the export queue
        (tests read spans synchronously); `metric_readers` are added to the Prometheus reader
        and the OTLP reader."""
        self.config = config
        self._span_exporter = span_exporter
        self._span_sink = span_sink
        self._extra_readers = list(metric_readers)
        self.export_stats = ExportStats()
        self.registry = CollectorRegistry(auto_describe=True)
        self.process = ProcessSampler()
        self._active_requests: Counter[str] | None = None
        self._started = False
        self.resource: Resource
        self.keeper: SlowTraceKeeper
        self.tracer_provider: TracerProvider
        self.meter_provider: MeterProvider
        self.tracer: Tracer
        self.meter: Meter
        self.instruments: Instruments
        self.loop_lag: EventLoopLagMonitor
        self.roots: LocalRoots
        self.window: RecentWindow
        self._cache: CacheManager | None = None
        self._websockets_active: Callable[[], int] | None = None
        self._span_worker: SpanExportWorker | None = None
        self._prometheus: PrometheusMetricReader | None = None

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        rate_limit_sdk_logs()
        self.resource = build_resource(self.config.service_version)
        sink = self._span_sink or self._build_span_sink()
        self.keeper = SlowTraceKeeper(
            sink,
            resource=self.resource,
            slower_than_ms=self.config.keep_slower_than_ms,
            ratio=self.config.keep_ratio,
            max_pending_traces=self.config.max_pending_traces,
        )
        self.tracer_provider = TracerProvider(resource=self.resource, shutdown_on_exit=False)
        self.tracer_provider.add_span_processor(self.keeper)
        self.tracer = self.tracer_provider.get_tracer(
            DEFAULT_SERVICE_NAME, self.config.service_version
        )
        self.roots = LocalRoots(
            self.keeper,
            self.tracer_provider.sampler,
            self.resource,
            InstrumentationScope(DEFAULT_SERVICE_NAME, self.config.service_version),
        )

        scope = InstrumentationScope(DEFAULT_SERVICE_NAME, self.config.service_version)
        hot = hot_path_histograms()
        fast = FastHistograms(scope, hot)
        self._prometheus = _MergingPrometheusReader(fast, registry=self.registry)
        readers: list[MetricReader] = [self._prometheus, *self._extra_readers]
        if _exporter_enabled("metrics"):
            readers.append(
                PeriodicExportingMetricReader(
                    CountingMetricExporter(
                        OTLPMetricExporter(),
                        self.export_stats,
                        transform=fast.merge_into,
                    )
                )
            )
        exemplar_filter = (
            None
            if _env_set("OTEL_METRICS_EXEMPLAR_FILTER")
            else KeptTraceExemplarFilter(self.keeper)
        )
        self.meter_provider = MeterProvider(
            metric_readers=readers,
            resource=self.resource,
            exemplar_filter=exemplar_filter,
            shutdown_on_exit=False,
        )
        self.meter = self.meter_provider.get_meter(
            DEFAULT_SERVICE_NAME, self.config.service_version
        )
        self.instruments = Instruments.create(self.meter, hot)
        register_process_observers(self.meter, self.process)
        self._register_http_observers()
        self._register_export_observers()
        self.loop_lag = EventLoopLagMonitor(
            self.instruments.event_loop_lag, self.config.loop_lag_interval
        )
        self.loop_lag.start()
        self.window = RecentWindow(self._snapshot, interval=self.config.window_interval)
        self.window.start()
        self._started = True

    async def shutdown(self) -> None:
        if not self._started:
            return
        await self.loop_lag.stop()
        await self.window.stop()
        # Exporters may block up to their timeouts: keep the loop free while they finish.
        await asyncio.to_thread(self._shutdown_blocking)
        self._started = False

    def _shutdown_blocking(self) -> None:
        self.tracer_provider.shutdown()
        if self._span_worker is not None:
            self._span_worker.shutdown(timeout_s=5.0)
        self.meter_provider.shutdown(timeout_millis=5_000)

    def _build_span_sink(self) -> SpanSink:
        exporter = self._span_exporter
        if exporter is None and _exporter_enabled("traces"):
            exporter = OTLPSpanExporter()
        if exporter is None:
            return _discard
        self._span_worker = SpanExportWorker(exporter, self.export_stats)
        return self._span_worker.submit

    # ----------------------------------------------------------------- hooks for the app
    def cache_instrumentation(self) -> CacheTelemetry:
        return CacheTelemetry(self.tracer, self.instruments, self.keeper)

    def observe_cache(self, manager: CacheManager) -> None:
        if isinstance(manager.instrumentation, CacheTelemetry):
            manager.instrumentation.bind(manager)
        register_cache_observers(self.meter, manager)
        self._cache = manager

    def bottlenecks(self) -> list[Check]:
        active = self._websockets_active() if self._websockets_active is not None else None
        return evaluate(self.window, self.instruments.http_duration.boundaries, active)

    def _snapshot(self) -> Snapshot:
        hits = lookups = 0
        if self._cache is not None:
            stats = self._cache.stats
            hits = stats.hits
            lookups = hits + stats.misses
        counts, _, _ = self.instruments.http_duration.totals()
        return Snapshot(time.monotonic(), lookups, hits, tuple(counts), self.process.rss_bytes())

    def websocket_instrumentation(self) -> WebSocketTelemetry:
        return WebSocketTelemetry(self.roots, self.instruments.websocket_session_duration)

    def observe_websockets(self, stats: WebSocketStats) -> None:
        register_websocket_observers(self.meter, stats)
        self._websockets_active = lambda: stats.active_connections

    def instrument_upstream(self, client: ExchangeClient) -> InstrumentedExchange:
        return InstrumentedExchange(client, self.tracer, self.instruments)

    def observe_active_requests(self, active: Counter[str]) -> None:
        """Called by the HTTP middleware when Starlette builds it (before `start`)."""
        self._active_requests = active

    def prometheus_text(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    # ----------------------------------------------------------------- observers
    def _register_http_observers(self) -> None:
        def active(_: CallbackOptions) -> Iterable[Observation]:
            for method, count in list((self._active_requests or {}).items()):
                yield Observation(count, {"http.request.method": method})

        self.meter.create_observable_up_down_counter(
            "http.server.active_requests",
            [active],
            unit="{request}",
            description="HTTP requests in flight.",
        )

    def _register_export_observers(self) -> None:
        stats, keeper = self.export_stats, self.keeper

        def dropped(_: CallbackOptions) -> Iterable[Observation]:
            for signal, count in stats.dropped.items():
                yield Observation(count, {"signal": signal})
            yield Observation(keeper.stats.overflow_spans, {"signal": "traces_pending"})

        def failures(_: CallbackOptions) -> Iterable[Observation]:
            for signal, count in stats.failures.items():
                yield Observation(count, {"signal": signal})

        def traces(_: CallbackOptions) -> Iterable[Observation]:
            yield Observation(keeper.stats.kept_traces, {"decision": "kept"})
            yield Observation(keeper.stats.dropped_traces, {"decision": "dropped"})

        self.meter.create_observable_counter(
            "telemetry.export.dropped", [dropped], unit="{item}", description="Telemetry lost."
        )
        self.meter.create_observable_counter(
            "telemetry.export.failures",
            [failures],
            unit="{export}",
            description="Failed export attempts.",
        )
        self.meter.create_observable_counter(
            "telemetry.traces", [traces], unit="{trace}", description="Local traces by decision."
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
