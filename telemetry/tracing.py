"""Keep every slow or failed trace, a sample of the rest, and pay little for the ones dropped.

Two mechanisms work together:

* `SlowTraceKeeper`, a span processor, holds the spans of a trace until its *local root* (the
  span with no parent in this process: an HTTP request, a WebSocket operation, a background job)
  ends. Then it decides once: keep the whole trace if the root took longer than the threshold or
  failed, or if the trace id falls in the configured ratio (the same rule as TraceIdRatioBased, so
  services sampling by ratio agree); otherwise drop it before export.
* Child operations that happen many times per request (cache calls) are not SDK spans while they
  run: they are recorded as `DeferredSpan` tuples on the request's local root (two clock reads
  and an append) and turned into real `ReadableSpan`s only if the trace is kept. Most traces are
  dropped, so most child spans never cost the SDK's span machinery.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final, Protocol

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
_UNDECIDED: Final = "undecided"


Describe = Callable[[tuple[object, ...]], tuple[str, dict[str, AttributeValue]]]
DeferredSpan = tuple[int, int, Describe, tuple[object, ...], str | None]
"""A finished child operation, recorded without an SDK span, as a plain tuple (cheapest to
build): (start, end) in `perf_counter_ns`, `describe(data)` -> (name, attributes), and an error
type or None. `describe` runs only for a kept trace, so a dropped one never builds them."""


class TraceBuffer(Protocol):
    """Where deferred spans of the current local root go (see roots.RootScope)."""

    start_ns: int
    start_perf_ns: int
    ratio_kept: bool
    """The ratio part of the trace's keep decision, known while it runs."""

    @property
    def trace_id(self) -> int: ...

    @property
    def context(self) -> SpanContext: ...

    def add(self, span: DeferredSpan) -> None: ...

    def deferred(self) -> tuple[list[DeferredSpan], int]:
        """The recorded spans and how many were refused over the bound."""
        ...


current_buffer: ContextVar[TraceBuffer | None] = ContextVar("telemetry_trace_buffer", default=None)
"""The open local root of the running request or socket operation (None outside of one)."""


@dataclass
class KeeperStats:
    kept_traces: int = 0
    dropped_traces: int = 0
    kept_spans: int = 0
    overflow_spans: int = 0
    """Spans lost because a trace or the pending table was over its bound."""


class _BoundedMap(dict[int, object]):
    """A dict that forgets its oldest entries beyond `limit` (insertion order)."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: int, value: object) -> object | None:
        """Store; returns the evicted oldest value, if any."""
        self[key] = value
        if len(self) > self.limit:
            oldest = next(iter(self))
            return self.pop(oldest)
        return None


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
        self.threshold_ns = int(slower_than_ms * 1_000_000)
        self.ratio_bound = round(ratio * (1 << 64))
        """Trace ids whose lower 64 bits are below this are kept by ratio."""
        self.max_spans_per_trace = max_spans_per_trace
        self._max_pending = max_pending_traces
        self._pending = _BoundedMap(max_pending_traces)
        self._decisions = _BoundedMap(max_pending_traces)
        # Recently dropped local roots: their late children are dropped on sight. A set that is
        # emptied when full costs less per request than an ordered map with eviction.
        self._dropped_recent: set[int] = set()
        self._buffers: dict[int, TraceBuffer] = {}
        self._lock = threading.Lock()
        self._scope = InstrumentationScope("telemetry.deferred")
        self.stats = KeeperStats()

    # ----------------------------------------------------------------- decisions
    def ratio_keeps(self, trace_id: int) -> bool:
        return (trace_id & _LOWER_64) < self.ratio_bound

    def decide(self, trace_id: int, duration_ns: int, failed: bool) -> str | None:
        """Why this trace is kept ("error", "slow", "ratio"), or None to drop it."""
        if failed:
            return "error"
        if duration_ns > self.threshold_ns:
            return "slow"
        if (trace_id & _LOWER_64) < self.ratio_bound:
            return "ratio"
        return None

    def settle(self, trace_id: int, reason: str | None, buffer: TraceBuffer | None) -> None:
        """Record a root's decision before it ends (so exemplars and late children follow it)."""
        with self._lock:
            self._decisions.put(trace_id, reason)
            if buffer is not None and reason is not None:
                self._buffers[trace_id] = buffer

    def drop_root(self, trace_id: int | None) -> None:
        """A lightweight local root ended and is not kept: forget it and whatever it held.

        The common case (nothing held) takes no lock: the decision only goes into a set that
        late children are checked against. None: a root whose id was never drawn, so nothing
        can refer to it.
        """
        if trace_id is not None:
            recent = self._dropped_recent
            if len(recent) >= self._max_pending:
                recent.clear()
            recent.add(trace_id)
            if self._pending:
                with self._lock:
                    self._pending.pop(trace_id, None)
        self.stats.dropped_traces += 1

    def is_kept(self, trace_id: int) -> bool:
        """Known decision, else the ratio part (the only part knowable before the end)."""
        reason = self._decisions.get(trace_id, _UNDECIDED)
        if reason == _UNDECIDED:
            return self.ratio_keeps(trace_id)
        return reason is not None

    def finish_root(self, trace_id: int, build_root: Callable[[], ReadableSpan]) -> None:
        """End a kept lightweight local root (see roots.py): export it with its children."""
        with self._lock:
            held = self._pending.pop(trace_id, None) if self._pending else None
            buffer = self._buffers.pop(trace_id, None)
        spans: list[ReadableSpan] = list(held) if isinstance(held, list) else []
        spans.extend(self._materialize(buffer))
        spans.append(build_root())
        self.stats.kept_traces += 1
        self._export(spans)

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
            self._end_sdk_root(span, trace_id)
            return
        if trace_id in self._dropped_recent:
            return
        with self._lock:
            decided = self._decisions.get(trace_id, _UNDECIDED)
            if decided == _UNDECIDED:
                self._hold(trace_id, span)
                return
        if decided is not None:
            self._export([span])

    def _end_sdk_root(self, span: ReadableSpan, trace_id: int) -> None:
        with self._lock:
            reason = self._decisions.get(trace_id, _UNDECIDED)
            if reason == _UNDECIDED:
                start, end = span.start_time or 0, span.end_time or 0
                failed = span.status.status_code is StatusCode.ERROR
                reason = self.decide(trace_id, end - start, failed)
                self._decisions.put(trace_id, reason)
            held = self._pending.pop(trace_id, None)
            buffer = self._buffers.pop(trace_id, None)
        if reason is None:
            self.stats.dropped_traces += 1
            return
        spans: list[ReadableSpan] = list(held) if isinstance(held, list) else []
        spans.extend(self._materialize(buffer))
        spans.append(span)
        self.stats.kept_traces += 1
        self._export(spans)

    def _export(self, spans: Sequence[ReadableSpan]) -> None:
        self.stats.kept_spans += len(spans)
        self._sink(spans)

    def _hold(self, trace_id: int, span: ReadableSpan) -> None:
        held = self._pending.get(trace_id)
        if not isinstance(held, list):
            held = []
            evicted = self._pending.put(trace_id, held)
            if isinstance(evicted, list):
                self.stats.overflow_spans += len(evicted)
        if len(held) < self.max_spans_per_trace:
            held.append(span)
        else:
            self.stats.overflow_spans += 1

    def _materialize(self, buffer: TraceBuffer | None) -> list[ReadableSpan]:
        if buffer is None:
            return []
        deferred, refused = buffer.deferred()
        self.stats.overflow_spans += refused
        root = buffer.context
        # Deferred spans carry monotonic times; the root's start anchors them to wall time.
        offset = buffer.start_ns - buffer.start_perf_ns
        out = []
        for start, end, describe, data, error in deferred:
            name, attributes = describe(data)
            if error:
                attributes["error.type"] = error
            out.append(
                ReadableSpan(
                    name=name,
                    context=SpanContext(
                        root.trace_id, random.getrandbits(64), is_remote=False, trace_flags=_SAMPLED
                    ),
                    parent=root,
                    resource=self._resource,
                    attributes=attributes,
                    kind=SpanKind.INTERNAL,
                    instrumentation_scope=self._scope,
                    status=Status(StatusCode.ERROR, error) if error else Status(StatusCode.UNSET),
                    start_time=start + offset,
                    end_time=end + offset,
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
    """Attach exemplars only from traces that will be exported, so every link resolves.

    SDK instruments recorded below a local root get its context explicitly
    (`roots.parent_context()`); the hot-path histograms take their exemplar directly."""

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
