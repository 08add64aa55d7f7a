"""Keep every slow or failed trace, a sample of the rest, and pay little for the ones dropped.

Two mechanisms work together:

* `SlowTraceKeeper`, a span processor, holds the spans of a trace until its *local root* (the
  span with no parent in this process: an HTTP request, a WebSocket operation, a background job)
  ends. Then it decides once: keep the whole trace if the root took longer than the threshold or
  failed, or if the trace id falls in the configured ratio (the same rule as TraceIdRatioBased, so
  services sampling by ratio agree); otherwise drop it before export.
* Child operations that happen many times per request (cache calls) are not SDK spans while they
  run: they are recorded as `DeferredSpan` tuples in the request's `TraceBuffer` (two clock reads
  and an append) and turned into real `ReadableSpan`s only if the trace is kept. Most traces are
  dropped, so most child spans never cost the SDK's span machinery.
"""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import ExemplarFilter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags
from opentelemetry.util.types import Attributes, AttributeValue

SpanSink = Callable[[Sequence[ReadableSpan]], None]
KEEP_REASON_ATTRIBUTE: Final = "sampling.keep_reason"
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_LOWER_64: Final = (1 << 64) - 1


@dataclass(slots=True)
class DeferredSpan:
    """A finished child operation, recorded without an SDK span."""

    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, AttributeValue]
    error: str | None = None
    kind: SpanKind = SpanKind.INTERNAL


@dataclass(slots=True)
class TraceBuffer:
    """Deferred child spans of one local root, bounded."""

    root: SpanContext
    limit: int
    spans: list[DeferredSpan] = field(default_factory=list)
    dropped: int = 0

    def add(self, span: DeferredSpan) -> None:
        if len(self.spans) < self.limit:
            self.spans.append(span)
        else:
            self.dropped += 1


current_buffer: ContextVar[TraceBuffer | None] = ContextVar("telemetry_trace_buffer", default=None)


@dataclass
class KeeperStats:
    kept_traces: int = 0
    dropped_traces: int = 0
    kept_spans: int = 0
    overflow_spans: int = 0
    """Spans lost because a trace or the pending table was over its bound."""


class SlowTraceKeeper(SpanProcessor):
    """Decides at the end of each local root whether its trace is exported."""

    def __init__(
        self,
        sink: SpanSink,
        *,
        resource: Resource,
        slower_than_ms: float,
        ratio: float,
        max_pending_traces: int = 2048,
        max_spans_per_trace: int = 512,
    ) -> None:
        if not 0.0 <= ratio <= 1.0:
            raise ValueError("ratio must be within [0, 1]")
        self._sink = sink
        self._resource = resource
        self._threshold_ns = int(slower_than_ms * 1_000_000)
        self._ratio_bound = round(ratio * (1 << 64))
        self.max_spans_per_trace = max_spans_per_trace
        self._max_pending = max_pending_traces
        self._pending: OrderedDict[int, list[ReadableSpan]] = OrderedDict()
        self._decisions: OrderedDict[int, str | None] = OrderedDict()
        self._buffers: dict[int, TraceBuffer] = {}
        self._lock = threading.Lock()
        self._scope = InstrumentationScope("telemetry.deferred")
        self.stats = KeeperStats()

    # ----------------------------------------------------------------- decisions
    def ratio_keeps(self, trace_id: int) -> bool:
        return (trace_id & _LOWER_64) < self._ratio_bound

    def decide(self, trace_id: int, duration_ns: int, failed: bool) -> str | None:
        """Why this trace is kept ("error", "slow", "ratio"), or None to drop it."""
        if failed:
            return "error"
        if duration_ns > self._threshold_ns:
            return "slow"
        if self.ratio_keeps(trace_id):
            return "ratio"
        return None

    def settle(self, trace_id: int, reason: str | None, buffer: TraceBuffer | None) -> None:
        """Record a root's decision before it ends (so exemplars can follow it)."""
        with self._lock:
            self._remember(trace_id, reason)
            if buffer is not None and reason is not None:
                self._buffers[trace_id] = buffer

    def finish_root(self, trace_id: int, build_root: Callable[[], ReadableSpan]) -> bool:
        """End a lightweight local root (see roots.py) whose decision was settled.

        The root's ReadableSpan is only built when the trace is kept. Returns whether it was.
        """
        with self._lock:
            reason = self._decisions.get(trace_id)
            held = self._pending.pop(trace_id, [])
            buffer = self._buffers.pop(trace_id, None)
        if reason is None:
            self.stats.dropped_traces += 1
            return False
        spans = [*held, *self._materialize(buffer), build_root()]
        self.stats.kept_traces += 1
        self._export(spans)
        return True

    def is_kept(self, trace_id: int) -> bool:
        """Known decision, else the ratio part (the only part knowable before the end)."""
        reason = self._decisions.get(trace_id, "")
        if reason == "":
            return self.ratio_keeps(trace_id)
        return reason is not None

    # ----------------------------------------------------------------- span processor
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        context = span.context
        if context is None or not context.trace_flags.sampled:
            return
        trace_id = context.trace_id
        parent = span.parent
        if parent is None or parent.is_remote:
            self._end_root(span, trace_id)
            return
        with self._lock:
            decided = self._decisions.get(trace_id, "")
            if decided == "":
                self._hold(trace_id, span)
                return
        if decided is not None:
            self._export([span])

    def _end_root(self, span: ReadableSpan, trace_id: int) -> None:
        with self._lock:
            reason = self._decisions.get(trace_id, "")
            if reason == "":
                start, end = span.start_time or 0, span.end_time or 0
                failed = span.status.status_code is StatusCode.ERROR
                reason = self.decide(trace_id, end - start, failed)
                self._remember(trace_id, reason)
            held = self._pending.pop(trace_id, [])
            buffer = self._buffers.pop(trace_id, None)
        if reason is None:
            self.stats.dropped_traces += 1
            return
        spans = [*held, *self._materialize(buffer), span]
        self.stats.kept_traces += 1
        self._export(spans)

    def _export(self, spans: Sequence[ReadableSpan]) -> None:
        self.stats.kept_spans += len(spans)
        self._sink(spans)

    def _hold(self, trace_id: int, span: ReadableSpan) -> None:
        held = self._pending.get(trace_id)
        if held is None:
            if len(self._pending) >= self._max_pending:
                _, evicted = self._pending.popitem(last=False)
                self.stats.overflow_spans += len(evicted)
            held = self._pending[trace_id] = []
        if len(held) < self.max_spans_per_trace:
            held.append(span)
        else:
            self.stats.overflow_spans += 1

    def _remember(self, trace_id: int, reason: str | None) -> None:
        self._decisions[trace_id] = reason
        if len(self._decisions) > self._max_pending:
            self._decisions.popitem(last=False)

    def _materialize(self, buffer: TraceBuffer | None) -> list[ReadableSpan]:
        if buffer is None:
            return []
        self.stats.overflow_spans += buffer.dropped
        root = buffer.root
        out = []
        for deferred in buffer.spans:
            context = SpanContext(
                root.trace_id, random.getrandbits(64), is_remote=False, trace_flags=_SAMPLED
            )
            status = (
                Status(StatusCode.ERROR, deferred.error)
                if deferred.error
                else Status(StatusCode.UNSET)
            )
            out.append(
                ReadableSpan(
                    name=deferred.name,
                    context=context,
                    parent=root,
                    resource=self._resource,
                    attributes=deferred.attributes,
                    kind=deferred.kind,
                    instrumentation_scope=self._scope,
                    status=status,
                    start_time=deferred.start_ns,
                    end_time=deferred.end_ns,
                )
            )
        return out

    def shutdown(self) -> None:
        with self._lock:
            self._pending.clear()
            self._buffers.clear()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


class KeptTraceExemplarFilter(ExemplarFilter):
    """Attach exemplars only from traces that will be exported, so every link resolves."""

    def __init__(self, keeper: SlowTraceKeeper) -> None:
        self._keeper = keeper

    def should_sample(
        self,
        value: int | float,
        time_unix_nano: int,
        attributes: Attributes,
        context: Context,
    ) -> bool:
        span_context = trace.get_current_span(context).get_span_context()
        return span_context.is_valid and self._keeper.is_kept(span_context.trace_id)
