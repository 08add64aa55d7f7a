"""Exporting without ever hurting the service.

An OTLP endpoint can be down, hang, or answer errors. None of that may slow a request or grow
memory: kept spans go into a bounded queue drained by one background thread; when the queue is
full, new spans are dropped and counted. Export failures are counted too, and the SDK's own
per-failure log lines are rate-limited.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from opentelemetry.sdk.metrics.export import (
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from app.ratelimit_log import RateLimitedLogger

log = logging.getLogger(__name__)


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


@dataclass
class ExportStats:
    """Per signal: what was exported, dropped, or failed."""

    exported: dict[str, int] = field(default_factory=lambda: {"traces": 0, "metrics": 0})
    dropped: dict[str, int] = field(default_factory=lambda: {"traces": 0, "metrics": 0})
    failures: dict[str, int] = field(default_factory=lambda: {"traces": 0, "metrics": 0})


class SpanExportWorker:
    """Bounded queue + one thread. Honors OTEL_BSP_MAX_QUEUE_SIZE, _MAX_EXPORT_BATCH_SIZE and
    _SCHEDULE_DELAY like the SDK's batch processor, but counts drops and never logs per span."""

    def __init__(
        self,
        exporter: SpanExporter,
        stats: ExportStats,
        *,
        max_queue_size: int | None = None,
        max_batch_size: int | None = None,
        schedule_delay_s: float | None = None,
    ) -> None:
        self._exporter = exporter
        self._stats = stats
        self.max_queue_size = max_queue_size or _env_int("OTEL_BSP_MAX_QUEUE_SIZE", 2048)
        self._batch = max_batch_size or _env_int("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512)
        self._delay = (
            schedule_delay_s
            if schedule_delay_s is not None
            else _env_int("OTEL_BSP_SCHEDULE_DELAY", 1000) / 1000
        )
        self._queue: deque[ReadableSpan] = deque()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._warn = RateLimitedLogger(log)
        self._thread = threading.Thread(target=self._run, name="otel-span-export", daemon=True)
        self._thread.start()

    @property
    def queued(self) -> int:
        return len(self._queue)

    def submit(self, spans: Sequence[ReadableSpan]) -> None:
        """Called on the request path: O(len(spans)), never blocks on I/O."""
        with self._lock:
            room = self.max_queue_size - len(self._queue)
            if len(spans) > room:
                self._stats.dropped["traces"] += len(spans) - max(room, 0)
                spans = spans[: max(room, 0)]
                self._warn.warning("queue-full", "span export queue full; dropping spans")
            self._queue.extend(spans)
            full = len(self._queue) >= self._batch
        if full:
            self._wake.set()

    def _take(self) -> list[ReadableSpan]:
        with self._lock:
            n = min(self._batch, len(self._queue))
            return [self._queue.popleft() for _ in range(n)]

    def _run(self) -> None:
        while not self._stopping:
            self._wake.wait(self._delay)
            self._wake.clear()
            self._drain()
        self._drain()

    def _drain(self) -> None:
        while batch := self._take():
            try:
                result = self._exporter.export(batch)
            except Exception as exc:
                result = SpanExportResult.FAILURE
                self._warn.warning("export-error", "span export raised %r", exc)
            if result is SpanExportResult.SUCCESS:
                self._stats.exported["traces"] += len(batch)
            else:
                self._stats.failures["traces"] += 1
                self._stats.dropped["traces"] += len(batch)
                self._warn.warning("export-failed", "span export failed; %d spans lost", len(batch))
            if self._stopping:
                break

    def shutdown(self, timeout_s: float = 5.0) -> None:
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout_s)
        self._exporter.shutdown()


class CountingMetricExporter(MetricExporter):
    """Wraps an exporter to count failures and rate-limit their logging."""

    def __init__(
        self,
        inner: MetricExporter,
        stats: ExportStats,
        transform: Callable[[MetricsData], MetricsData] | None = None,
    ) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self._inner = inner
        self._stats = stats
        self._transform = transform
        self._warn = RateLimitedLogger(log)

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: object
    ) -> MetricExportResult:
        if self._transform is not None:
            metrics_data = self._transform(metrics_data)
        try:
            result = self._inner.export(metrics_data, timeout_millis=timeout_millis)
        except Exception as exc:
            result = MetricExportResult.FAILURE
            self._warn.warning("metrics-export-error", "metric export raised %r", exc)
        if result is MetricExportResult.SUCCESS:
            self._stats.exported["metrics"] += 1
        else:
            self._stats.failures["metrics"] += 1
            self._warn.warning("metrics-export-failed", "metric export failed")
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: object) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis)


class RateLimitFilter(logging.Filter):
    """At most one record per (logger, message template) per interval from the OTel SDK, whose
    exporters log every failed attempt."""

    def __init__(self, interval_s: float = 60.0) -> None:
        super().__init__()
        self._interval = interval_s
        self._last: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg))
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                return False
            if len(self._last) > 1000:
                self._last.clear()
            self._last[key] = now
        return True


class _ForwardToRoot(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        logging.getLogger().handle(record)


_sdk_logs_limited = False


def rate_limit_sdk_logs() -> None:
    """Route every `opentelemetry.*` record through one rate-limiting handler, once per process.

    Logger filters do not apply to child loggers, so the limit sits on a handler at the
    `opentelemetry` logger that forwards what passes to the root logger's handlers.
    """
    global _sdk_logs_limited
    if _sdk_logs_limited:
        return
    handler = _ForwardToRoot()
    handler.addFilter(RateLimitFilter())
    sdk_logger = logging.getLogger("opentelemetry")
    sdk_logger.addHandler(handler)
    sdk_logger.propagate = False
    _sdk_logs_limited = True
