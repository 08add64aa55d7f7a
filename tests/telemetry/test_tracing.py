"""The keep/drop rule, held child spans, deferred spans and the exemplar filter, in isolation."""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.util.types import AttributeValue

from telemetry.roots import RootScope
from telemetry.tracing import KeptTraceExemplarFilter, SlowTraceKeeper
from tests.telemetry.conftest import SpanCollector


def keeper(
    ratio: float = 0.0, slower_than_ms: float = 100.0, **kw: int
) -> tuple[SlowTraceKeeper, SpanCollector]:
    sink = SpanCollector()
    return (
        SlowTraceKeeper(
            sink, resource=Resource.create({}), slower_than_ms=slower_than_ms, ratio=ratio, **kw
        ),
        sink,
    )


def test_decide_error_slow_ratio() -> None:
    k, _ = keeper(ratio=0.5)
    low = 0x0000_0000_0000_0000_1000_0000_0000_0000  # lower 64 bits small: inside the ratio
    high = 0x0000_0000_0000_0000_F000_0000_0000_0000
    assert k.decide(high, 1_000_000, failed=True) == "error"
    assert k.decide(high, 100_000_001, failed=False) == "slow"
    assert k.decide(high, 100_000_000, failed=False) is None
    assert k.decide(low, 1_000, failed=False) == "ratio"
    assert k.ratio_keeps(low)
    assert not k.ratio_keeps(high)


def test_ratio_bounds() -> None:
    assert all(keeper(ratio=1.0)[0].ratio_keeps(t) for t in (1, 2**64 - 1, 2**128 - 1))
    assert not any(keeper(ratio=0.0)[0].ratio_keeps(t) for t in (0, 1, 2**64 - 1))


def _sdk_trace(k: SlowTraceKeeper, root_seconds: float) -> None:
    provider = TracerProvider()
    provider.add_span_processor(k)
    tracer = provider.get_tracer("t")
    root = tracer.start_span("root", start_time=0)
    ctx = trace.set_span_in_context(root)
    child = tracer.start_span("child", context=ctx, start_time=1)
    child.end(end_time=2)
    root.end(end_time=int(root_seconds * 1e9))


def test_children_wait_for_the_root_decision() -> None:
    k, sink = keeper()
    _sdk_trace(k, root_seconds=0.05)
    assert sink.spans == []
    assert k.stats.dropped_traces == 1
    _sdk_trace(k, root_seconds=0.5)
    assert sink.names() == ["child", "root"]
    assert k.stats.kept_traces == 1


def test_late_children_follow_the_decision() -> None:
    k, sink = keeper()
    provider = TracerProvider()
    provider.add_span_processor(k)
    tracer = provider.get_tracer("t")
    root = tracer.start_span("root", start_time=0)
    late = tracer.start_span("late", context=trace.set_span_in_context(root), start_time=1)
    root.end(end_time=500_000_000)
    late.end(end_time=600_000_000)
    assert sink.names() == ["root", "late"]


def test_pending_table_is_bounded() -> None:
    k, _ = keeper(max_pending_traces=10, max_spans_per_trace=3)
    provider = TracerProvider()
    provider.add_span_processor(k)
    tracer = provider.get_tracer("t")
    roots = []
    for _ in range(50):
        root = tracer.start_span("root")
        roots.append(root)
        ctx = trace.set_span_in_context(root)
        for _ in range(5):
            tracer.start_span("child", context=ctx).end()
    assert len(k._pending) <= 10
    assert all(isinstance(v, list) and len(v) <= 3 for v in k._pending.values())
    assert k.stats.overflow_spans == 50 * 5 - 10 * 3


def _cache_span(data: tuple[object, ...]) -> tuple[str, dict[str, AttributeValue]]:
    described.append(data)
    return f"cache.get {data[0]}", {"cache.namespace": str(data[0])}


described: list[tuple[object, ...]] = []


def _root(name: str, trace_id: int, limit: int) -> RootScope:
    """A local root with known ids and its own span limit (LocalRoots draws both itself)."""
    bounded: type[RootScope] = type("BoundedRoot", (RootScope,), {"limit": limit})
    root = bounded(name, SpanKind.SERVER)
    root._trace_id, root._span_id = trace_id, 9
    return root


def test_deferred_spans_materialize_only_for_kept_traces() -> None:
    k, sink = keeper()
    root_ctx = SpanContext(7, 9, is_remote=False, trace_flags=TraceFlags(1))
    root = _root("GET /x", trace_id=7, limit=2)
    for i in range(3):
        root.add((10, 20, _cache_span, (f"api{i}",), None))
    assert root.refused == 1
    k.settle(7, "slow", root)
    k.finish_root(7, lambda: ReadableSpan("GET /x", context=root_ctx, kind=SpanKind.SERVER))
    assert k.stats.kept_traces == 1
    children = [s for s in sink.spans if s.name.startswith("cache.get")]
    assert [s.name for s in children] == ["cache.get api0", "cache.get api1"]
    for child in children:
        assert child.parent == root_ctx
        assert child.context is not None
        assert child.context.trace_id == 7
    assert k.stats.overflow_spans == 1

    described.clear()
    other = _root("GET /y", trace_id=8, limit=5)
    other.add((1, 2, _cache_span, ("api",), None))
    k.drop_root(8)
    assert k.stats.dropped_traces == 1
    assert described == [], "a dropped trace never builds its deferred spans"
    assert len(sink.spans) == 3


def test_exemplar_filter_only_passes_kept_traces() -> None:
    k, _ = keeper(ratio=0.0)
    exemplars = KeptTraceExemplarFilter(k)

    def in_trace(trace_id: int) -> otel_context.Context:
        span = NonRecordingSpan(SpanContext(trace_id, 1, False, TraceFlags(1)))
        return trace.set_span_in_context(span)

    assert not exemplars.should_sample(1.0, 0, {}, otel_context.Context())
    assert not exemplars.should_sample(1.0, 0, {}, in_trace(5))
    k.settle(5, "slow", None)
    assert exemplars.should_sample(1.0, 0, {}, in_trace(5))
    k.settle(6, None, None)
    assert not exemplars.should_sample(1.0, 0, {}, in_trace(6))


def test_late_children_of_a_dropped_light_root_are_neither_held_nor_exported() -> None:
    k, sink = keeper()
    provider = TracerProvider()
    provider.add_span_processor(k)
    root_ctx = SpanContext(0xABC, 0x1, is_remote=False, trace_flags=TraceFlags(1))
    k.drop_root(0xABC)
    parent = trace.set_span_in_context(NonRecordingSpan(root_ctx))
    provider.get_tracer("t").start_span("late", context=parent).end()
    assert sink.spans == []
    assert not k._pending
