"""The export queue and log limiting, without any network."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from telemetry.export import ExportStats, RateLimitFilter, SpanExportWorker, rate_limit_sdk_logs
from tests.support.log_records import root_log_records


class BlockingExporter(SpanExporter):
    def __init__(self) -> None:
        self.release = threading.Event()
        self.exported = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(5)
        self.exported += len(spans)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.release.set()


def test_a_hung_exporter_never_blocks_submit_and_memory_stays_bounded() -> None:
    exporter = BlockingExporter()
    stats = ExportStats()
    worker = SpanExportWorker(
        exporter, stats, max_queue_size=100, max_batch_size=10, schedule_delay_s=0.01
    )
    spans = [ReadableSpan(f"s{i}") for i in range(10)]
    start = time.perf_counter()
    for _ in range(1000):
        worker.submit(spans)
    elapsed = time.perf_counter() - start
    assert worker.queued <= 100
    assert stats.dropped["traces"] >= 10_000 - 100 - 10
    assert elapsed < 1.0  # liveness: 1000 submits never waited on the exporter
    exporter.release.set()
    worker.shutdown(timeout_s=2)


def test_failures_are_counted() -> None:
    class Failing(SpanExporter):
        def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
            raise ConnectionError("down")

        def shutdown(self) -> None:
            return None

    stats = ExportStats()
    worker = SpanExportWorker(
        Failing(), stats, max_queue_size=50, max_batch_size=5, schedule_delay_s=0.01
    )
    worker.submit([ReadableSpan("x")] * 5)
    deadline = time.monotonic() + 5
    while stats.failures["traces"] == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.shutdown(timeout_s=2)
    assert stats.failures["traces"] >= 1
    assert stats.dropped["traces"] >= 5


def test_sdk_log_lines_are_rate_limited() -> None:
    rate_limit_sdk_logs()
    rate_limit_sdk_logs()  # idempotent
    sdk = logging.getLogger("opentelemetry.exporter.otlp.proto.http.trace_exporter")
    with root_log_records() as records:
        for _ in range(100):
            sdk.error("Failed to export spans batch %s", "x-unique-test-template")
    hits = [r for r in records if "x-unique-test-template" in r.getMessage()]
    assert len(hits) == 1


def test_rate_limit_filter_lets_distinct_messages_through() -> None:
    f = RateLimitFilter(interval_s=60)
    record = logging.LogRecord("a", logging.WARNING, "p", 1, "m1", None, None)
    other = logging.LogRecord("a", logging.WARNING, "p", 1, "m2", None, None)
    assert f.filter(record)
    assert not f.filter(record)
    assert f.filter(other)
