"""The telemetry pipeline of one app: the SDK objects (telemetry/sdk.py), the tasks that sample
them, the hooks handed to `app` and the views the monitoring API serves.

Built per app (no global providers), so tests can run several apps in one process, and built
whole by `build_telemetry`: `start()` and `shutdown()` only run and stop its periodic tasks and
flush its exporters.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from opentelemetry.metrics import CallbackOptions, Observation
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.trace.export import SpanExporter

from app.cache.breaker import CircuitBreaker
from app.cache.manager import CacheManager
from app.periodic import Periodic
from app.upstream.client import ExchangeClient
from app.ws.stats import WebSocketStats
from telemetry.bottlenecks import Check, LiveAlerts
from telemetry.cache import CacheTelemetry, register_cache_observers
from telemetry.process import EventLoopLagMonitor, ProcessSampler, register_process_observers
from telemetry.report import api_section, bottlenecks_report, system_section
from telemetry.sdk import SdkPipeline, TelemetryConfig, build_sdk_pipeline
from telemetry.tasks import register_task_observers
from telemetry.tracing import SpanSink
from telemetry.upstream import InstrumentedExchange
from telemetry.websocket import WebSocketTelemetry, register_websocket_observers
from telemetry.window import RecentWindow, Snapshot

__all__ = ["Telemetry", "TelemetryConfig", "build_telemetry"]


def build_telemetry(
    config: TelemetryConfig,
    *,
    span_exporter: SpanExporter | None = None,
    span_sink: SpanSink | None = None,
    metric_readers: Sequence[MetricReader] = (),
    clock: Callable[[], float] = time.monotonic,
) -> Telemetry:
    """The whole pipeline of one app, ready for `start()`.

    `span_exporter` replaces the OTLP exporter; `span_sink` bypasses the export queue (tests read
    spans synchronously); `metric_readers` are added to the Prometheus reader and the OTLP
    reader; `clock` times the snapshots the live alert checks judge."""
    sdk = build_sdk_pipeline(
        config, span_exporter=span_exporter, span_sink=span_sink, metric_readers=metric_readers
    )
    return Telemetry(config, sdk, clock=clock)


class Telemetry:
    """Everything telemetry for one app, built whole (`build_telemetry`); `start()` in the
    lifespan starts its periodic tasks, `shutdown()` at its end stops them and flushes.

    Implements `app.observability.MonitoringSource` for the monitoring API."""

    def __init__(
        self,
        config: TelemetryConfig,
        sdk: SdkPipeline,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.resource = sdk.resource
        self.keeper = sdk.keeper
        self.tracer_provider = sdk.tracer_provider
        self.meter_provider = sdk.meter_provider
        self.roots = sdk.roots
        self.instruments = sdk.instruments
        self.registry = sdk.registry
        self.export_stats = sdk.export_stats
        self._span_worker = sdk.span_worker
        self._clock = clock
        self.tracer = sdk.tracer
        self.meter = sdk.meter
        self.process = ProcessSampler()
        # A plain dict (not a Counter): the exact type takes CPython's fast subscript paths.
        self.active_requests: dict[str, int] = {}
        """In-flight HTTP requests by method: the middleware counts, an observer reads."""
        self.loop_lag = EventLoopLagMonitor(
            self.instruments.event_loop_lag, config.loop_lag_interval
        )
        self.window = RecentWindow(
            self._snapshot, interval=config.window_interval, on_sample=self._judge_alerts
        )
        self.live_alerts = LiveAlerts(
            self.window, self.instruments.http_duration.boundaries, self._websocket_count
        )
        self._cache: CacheManager | None = None
        self._websockets_active: Callable[[], int] | None = None
        self._tasks: list[Periodic] = [self.loop_lag.task, self.window.task]
        self._started = False
        self._closed = False
        register_process_observers(self.meter, self.process)
        register_task_observers(self.meter, lambda: self._tasks)
        self._register_http_observers()
        self._register_export_observers()

    # ----------------------------------------------------------------- lifecycle
    def start(self) -> None:
        self.loop_lag.start()
        self.window.start()
        self._started = True

    async def shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._started:
            await self.loop_lag.stop()
            await self.window.stop()
        # Exporters may block up to their timeouts: keep the loop free while they finish.
        await asyncio.to_thread(self._shutdown_blocking)

    def _shutdown_blocking(self) -> None:
        self.tracer_provider.shutdown()
        if self._span_worker is not None:
            self._span_worker.shutdown(timeout_s=5.0)
        self.meter_provider.shutdown(timeout_millis=5_000)

    # ----------------------------------------------------------------- app.observability views
    def summary_sections(self) -> dict[str, Any]:
        return {"api": api_section(self), "system": system_section(self)}

    def api_report(self) -> dict[str, Any]:
        return api_section(self)

    def bottlenecks_report(self, runbook_page: str) -> dict[str, Any]:
        return bottlenecks_report(self, runbook_page)

    # ----------------------------------------------------------------- hooks for the app
    def cache_instrumentation(self, breaker: CircuitBreaker) -> CacheTelemetry:
        """Hooks for a cache manager built with `breaker`."""
        return CacheTelemetry(self.tracer, self.instruments, self.keeper, breaker)

    def observe_cache(self, manager: CacheManager) -> None:
        register_cache_observers(self.meter, manager)
        self._cache = manager
        self._tasks.append(manager.sweeper)

    @property
    def background_tasks(self) -> tuple[Periodic, ...]:
        """Every periodic task whose failures this pipeline counts."""
        return tuple(self._tasks)

    def bottlenecks(self) -> list[Check]:
        return self.live_alerts.evaluate()

    def _judge_alerts(self, snapshot: Snapshot) -> None:
        self.live_alerts.evaluate(snapshot)

    def _websocket_count(self) -> int | None:
        return self._websockets_active() if self._websockets_active is not None else None

    def _snapshot(self) -> Snapshot:
        hits = lookups = 0
        if self._cache is not None:
            stats = self._cache.stats
            hits = stats.hits
            lookups = hits + stats.misses
        counts, _, _ = self.instruments.http_duration.totals()
        return Snapshot(self._clock(), lookups, hits, tuple(counts), self.process.rss_bytes())

    def websocket_instrumentation(self) -> WebSocketTelemetry:
        return WebSocketTelemetry(self.roots, self.instruments.websocket_session_duration)

    def observe_websockets(self, stats: WebSocketStats) -> None:
        register_websocket_observers(self.meter, stats)
        self._websockets_active = lambda: stats.active_connections

    def instrument_upstream(self, client: ExchangeClient) -> InstrumentedExchange:
        return InstrumentedExchange(client, self.tracer, self.instruments)

    def prometheus_text(self) -> bytes:
        from prometheus_client import generate_latest

        return generate_latest(self.registry)

    # ----------------------------------------------------------------- observers
    def _register_http_observers(self) -> None:
        def active(_: CallbackOptions) -> Iterable[Observation]:
            for method, count in list(self.active_requests.items()):
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
