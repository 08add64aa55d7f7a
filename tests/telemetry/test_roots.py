"""`LocalRoots.judge`: the keep decision for a request that ended without opening a root (one
answered before routing). It must reach the verdicts an opened root would: slow, failed and
ratio-sampled requests kept, the remote parent's sampled flag obeyed, the ratio honoured."""

from __future__ import annotations

import time

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from telemetry.roots import LocalRoots
from telemetry.tracing import SlowTraceKeeper, current_buffer
from tests.telemetry.conftest import SpanCollector

SERVER = SpanKind.SERVER


def roots(ratio: float = 0.0, slower_than_ms: float = 100.0) -> tuple[LocalRoots, SpanCollector]:
    sink = SpanCollector()
    resource = Resource.create({})
    keeper = SlowTraceKeeper(sink, resource=resource, slower_than_ms=slower_than_ms, ratio=ratio)
    scope = InstrumentationScope("test")
    return LocalRoots(keeper, ParentBased(ALWAYS_ON), resource, scope), sink


def remote(trace_id: int, sampled: bool) -> Context:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    span = NonRecordingSpan(SpanContext(trace_id, 0x42, is_remote=True, trace_flags=flags))
    return trace.set_span_in_context(span)


def test_a_fast_request_is_dropped_without_a_root() -> None:
    r, sink = roots(ratio=0.0)
    seconds, root = r.judge("GET", SERVER, None, time.perf_counter_ns(), False)
    assert root is None
    assert 0 <= seconds < 1
    assert r.keeper.stats.dropped_traces == 1
    assert current_buffer.get() is None
    assert sink.spans == []


def test_a_slow_request_is_kept_with_its_whole_duration() -> None:
    r, sink = roots(ratio=0.0, slower_than_ms=5.0)
    start = time.perf_counter_ns() - 20_000_000  # began 20 ms ago
    seconds, root = r.judge("GET", SERVER, None, start, False)
    assert root is not None
    assert root.reason == "slow"
    assert seconds >= 0.02
    r.close(root, lambda: {"http.route": "/x"})
    (span,) = sink.spans
    assert span.end_time is not None
    assert span.start_time is not None
    assert span.end_time - span.start_time >= 20_000_000
    assert dict(span.attributes or {})["sampling.keep_reason"] == "slow"
    assert r.keeper.stats.kept_traces == 1


def test_a_failed_request_is_kept_with_its_exception() -> None:
    r, sink = roots(ratio=0.0)
    error = RuntimeError("boom")
    _, root = r.judge("GET", SERVER, None, time.perf_counter_ns(), True, error, "RuntimeError")
    assert root is not None
    assert root.reason == "error"
    r.close(root)
    (span,) = sink.spans
    assert span.status.description == "RuntimeError"
    assert [e.name for e in span.events] == ["exception"]


def test_the_remote_parent_is_obeyed() -> None:
    r, sink = roots(ratio=0.0, slower_than_ms=0.0)
    start = time.perf_counter_ns() - 1_000_000
    _, unsampled = r.judge("GET", SERVER, remote(0xABC, sampled=False), start, False)
    assert unsampled is None, "a parent that did not sample: no span, however slow"
    _, kept = r.judge("GET", SERVER, remote(0xDEF, sampled=True), start, False)
    assert kept is not None
    r.close(kept)
    (span,) = sink.spans
    assert span.context is not None
    assert span.context.trace_id == 0xDEF
    assert span.parent is not None
    assert span.parent.span_id == 0x42


def test_the_ratio_is_honoured_and_agrees_with_the_trace_id() -> None:
    r, _ = roots(ratio=0.25)
    kept = []
    for _ in range(20_000):
        _, root = r.judge("GET", SERVER, None, time.perf_counter_ns(), False)
        if root is not None:
            kept.append(root)
    assert 0.23 < len(kept) / 20_000 < 0.27
    assert all(root.reason == "ratio" for root in kept)
    assert all(r.keeper.ratio_keeps(root.trace_id) for root in kept)
