"""Local roots: the request (or socket operation) a trace is decided on, made cheap.

A local root is not an SDK span while it runs: it is a pair of ids (fresh, or the remote parent's
trace id) in a `RootScope` that the `current_buffer` context variable points at. Deferred cache
spans attach to it through that variable; SDK child spans (upstream calls) get it as their parent
from `parent_context()`. The OpenTelemetry context is not switched per request (that alone cost a
few microseconds); code that needs the request's span as the current one asks for
`parent_context()`. When the root ends, the keep/drop decision is settled; only a kept root is
turned into a `ReadableSpan` (with its attributes built then), so a dropped request pays a few
clock reads and one context-variable switch.

The head sampler configured by `OTEL_TRACES_SAMPLER` is consulted when a root opens, except for
the default (parent-based, always on), whose answer is known without asking.

Work that cannot have children or need the context (a request answered before routing) opens no
root at all: `judge` takes the same decision at its end and builds a root only to keep it.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Callable, Mapping
from contextvars import Token
from typing import ClassVar, Final

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, ParentBased, Sampler
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from opentelemetry.util.types import AttributeValue

from telemetry.tracing import (
    KEEP_REASON_ATTRIBUTE,
    DeferredSpan,
    SlowTraceKeeper,
    TraceBuffer,
    current_buffer,
)

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)
_SPAN_OF_64: Final = 1 << 64
_DEFAULT_SAMPLER: str = ParentBased(ALWAYS_ON).get_description()  # type: ignore[no-untyped-call]


class RootScope:
    """One open local root; also the buffer its deferred child spans go to.

    Built on every request, so it is built from as little as possible: the constructor stores
    three values, everything else is a class-level default until something changes it, and the
    trace and span ids are drawn only when someone needs them (a kept trace, an SDK child span,
    an exemplar). `LocalRoots` makes one subclass per pipeline carrying its limits, so no
    per-request store is spent on them either.
    """

    limit: ClassVar[int] = 512
    ratio_bound: ClassVar[int] = 0
    """Trace ids whose lower 64 bits are below this are kept by ratio (see `SlowTraceKeeper`)."""

    parent: SpanContext | None = None
    sampled = True
    ratio_kept = False
    """The ratio part of the keep decision, known from the start (see `_draw_trace_id`)."""
    trace_state: TraceState | None = None
    spans: list[DeferredSpan] | None = None
    refused = 0
    attributes: dict[str, AttributeValue] | None = None
    error: BaseException | None = None
    error_description: str | None = None
    reason: str | None = None
    duration_ns = 0
    buffer_token: Token[TraceBuffer | None] | None = None
    start_ns = 0
    """Wall-clock start, set when the trace is kept (from the monotonic start and the
    duration): most roots are dropped and never need it."""
    _trace_id = 0
    _span_id = 0
    _context: SpanContext | None = None

    def __init__(self, name: str, kind: SpanKind) -> None:
        self.name = name
        self.kind = kind
        self.start_perf_ns = time.perf_counter_ns()

    @property
    def trace_id(self) -> int:
        trace_id = self._trace_id
        if not trace_id:
            trace_id = self._trace_id = self._draw_trace_id()
        return trace_id

    def _draw_trace_id(self) -> int:
        """A random id whose lower half agrees with the ratio decision already taken.

        A fresh root decides the ratio part with one `random()` call at open; the id drawn
        later falls on the matching side of `ratio_bound`, so anything judging the trace by its
        id (exemplars, late children, another service sampling by ratio) reaches the same
        verdict, and the lower half is still uniform on its side.
        """
        bound = self.ratio_bound
        if self.ratio_kept:
            low = random.randrange(bound) if bound else 0
        else:
            low = bound + random.randrange(_SPAN_OF_64 - bound) if bound < _SPAN_OF_64 else 0
        return (random.getrandbits(64) << 64) | low or 1

    @property
    def span_id(self) -> int:
        span_id = self._span_id
        if not span_id:
            span_id = self._span_id = random.getrandbits(64) or 1
        return span_id

    @property
    def context(self) -> SpanContext:
        """Built on first use: most roots are dropped without anyone asking."""
        context = self._context
        if context is None:
            context = self._context = SpanContext(
                self.trace_id,
                self.span_id,
                is_remote=False,
                trace_flags=_SAMPLED if self.sampled else _NOT_SAMPLED,
                trace_state=self.trace_state,
            )
        return context

    def annotate(self, attributes: Mapping[str, AttributeValue]) -> None:
        """Attributes for the root's span, should the trace be kept."""
        if self.attributes is None:
            self.attributes = dict(attributes)
        else:
            self.attributes.update(attributes)

    def add(self, span: DeferredSpan) -> None:
        spans = self.spans
        if spans is None:
            self.spans = [span]
        elif len(spans) < self.limit:
            spans.append(span)
        else:
            self.refused += 1

    def deferred(self) -> tuple[list[DeferredSpan], int]:
        return self.spans or [], self.refused


def parent_context() -> Context | None:
    """The OpenTelemetry context whose current span is the open local root, if any: the parent
    to give SDK spans (and the context for SDK measurements) started below it."""
    root = current_buffer.get()
    if root is None:
        return None
    return trace.set_span_in_context(NonRecordingSpan(root.context))


class LocalRoots:
    """Opens and closes local roots for one telemetry pipeline."""

    def __init__(
        self,
        keeper: SlowTraceKeeper,
        sampler: Sampler,
        resource: Resource,
        scope: InstrumentationScope,
    ) -> None:
        self.keeper = keeper
        self._sampler = sampler
        description: str = sampler.get_description()
        self._default_sampler = description == _DEFAULT_SAMPLER
        self._resource = resource
        self._scope = scope
        bound = keeper.ratio_bound
        self._ratio = bound / _SPAN_OF_64
        self._threshold_ns = keeper.threshold_ns
        self._root_type: type[RootScope] = type(
            "RootScope",
            (RootScope,),
            {"__module__": __name__, "limit": keeper.max_spans_per_trace, "ratio_bound": bound},
        )

    def open(self, name: str, kind: SpanKind, parent: Context | None = None) -> RootScope:
        """A root that is current (in `current_buffer`) until `finish` or `close`."""
        root = self._fresh(name, kind, parent)
        root.buffer_token = current_buffer.set(root)
        return root

    def judge(
        self,
        name: str,
        kind: SpanKind,
        parent: Context | None,
        start_perf_ns: int,
        failed: bool,
        error: BaseException | None = None,
        description: str | None = None,
        ratio_kept: bool | None = None,
    ) -> tuple[float, RootScope | None]:
        """The keep decision for work that ended without opening a root, because nothing in it
        could have needed one (no child span, no context): a request answered before routing.

        Returns the duration (s) and, for a kept trace only, a settled root for the caller to
        `close` with its attributes. The common case, a fast dropped request, costs one clock
        read and one `random()`: no root, no context switch, no id. `ratio_kept` is the ratio
        draw when the caller already made it (see `fast_drop_rule`).
        """
        root: RootScope | None = None
        if parent is None and self._default_sampler and not failed:
            duration = time.perf_counter_ns() - start_perf_ns
            if duration <= self._threshold_ns:
                if ratio_kept is None:
                    ratio = self._ratio
                    ratio_kept = bool(ratio) and (ratio >= 1.0 or random.random() < ratio)
                if not ratio_kept:
                    self.keeper.stats.dropped_traces += 1
                    return duration / 1e9, None
                root = self._root_type(name, kind)  # kept by ratio
                root.ratio_kept = True
        if root is None:
            root = self._fresh(name, kind, parent)
        root.start_perf_ns = start_perf_ns
        seconds = self.settle(root, failed, error, description)
        if root.reason is None:
            self.close(root)  # counted as dropped
            return seconds, None
        return seconds, root

    def fast_drop_rule(self) -> tuple[int, float]:
        """`judge`'s common case for a caller that writes it out: work with no incoming parent
        that took at most the first value (ns) is dropped when `random()` is at least the second
        (then count it in `keeper.stats.dropped_traces`); otherwise call `judge`, passing
        `ratio_kept=True` if the draw was made. The threshold is -1 (nothing qualifies) when a
        configured head sampler must be asked."""
        if not self._default_sampler:
            return -1, 2.0
        return self._threshold_ns, self._ratio

    def _fresh(self, name: str, kind: SpanKind, parent: Context | None) -> RootScope:
        if parent is None and self._default_sampler:
            # The common case (a request without traceparent, the default sampler) answered
            # without asking anyone: a new sampled trace, its ids drawn if ever needed.
            root = self._root_type(name, kind)
            ratio = self._ratio
            if ratio and (ratio >= 1.0 or random.random() < ratio):
                root.ratio_kept = True
            return root
        remote: SpanContext | None = None
        if parent is not None:
            remote = trace.get_current_span(parent).get_span_context()
            if not remote.is_valid:
                remote, parent = None, None
        root = self._root_type(name, kind)
        if remote is not None:
            root._trace_id = remote.trace_id
            root.parent = remote
        else:
            root._trace_id = random.getrandbits(128) or 1
        root.ratio_kept = self.keeper.ratio_keeps(root._trace_id)
        if self._default_sampler:
            root.sampled = remote is None or remote.trace_flags.sampled
        else:
            decision = self._sampler.should_sample(parent, root._trace_id, name, kind)
            root.sampled = decision.decision is Decision.RECORD_AND_SAMPLE
            root.trace_state = decision.trace_state
        return root

    def settle(
        self,
        root: RootScope,
        failed: bool,
        error: BaseException | None = None,
        description: str | None = None,
    ) -> float:
        """Decide the trace's fate while the root is still current; returns its duration (s).

        The same rule as `SlowTraceKeeper.decide`, written out because it runs on every request.
        """
        root.duration_ns = duration = time.perf_counter_ns() - root.start_perf_ns
        if failed:
            root.error, root.error_description = error, description or "error"
        if root.sampled:
            if failed:
                reason: str | None = "error"
            elif duration > self._threshold_ns:
                reason = "slow"
            elif root.ratio_kept:
                reason = "ratio"
            else:
                return duration / 1e9
            root.reason = reason
            root.start_ns = time.time_ns() - duration
            self.keeper.settle(root.trace_id, reason, root)
        return duration / 1e9

    def finish(self, root: RootScope, failed: bool, description: str | None = None) -> float:
        """`settle`, then `close` at once if the trace is dropped (the common case, in one call):
        returns the duration (s). A kept root is left open: the caller records its exemplar and
        then calls `close` with the span's attributes."""
        root.duration_ns = duration = time.perf_counter_ns() - root.start_perf_ns
        if failed:
            root.error_description = description or "error"
            reason: str | None = "error"
        elif duration > self._threshold_ns:
            reason = "slow"
        elif root.ratio_kept:
            reason = "ratio"
        else:
            reason = None
        if reason is not None and root.sampled:
            root.reason = reason
            root.start_ns = time.time_ns() - duration
            self.keeper.settle(root.trace_id, reason, root)
            return duration / 1e9
        current_buffer.reset(root.buffer_token)  # type: ignore[arg-type]
        root.buffer_token = None
        if root.sampled:
            trace_id = root._trace_id
            if trace_id:
                self.keeper.drop_root(trace_id)
            else:  # an id nobody drew cannot be the parent of a late child
                self.keeper.stats.dropped_traces += 1
        return duration / 1e9

    def close(
        self, root: RootScope, attributes: Callable[[], dict[str, AttributeValue]] | None = None
    ) -> None:
        """Leave the root's context; export it (and its children) if it was kept."""
        if root.buffer_token is not None:
            current_buffer.reset(root.buffer_token)
        if root.reason is not None:
            self.keeper.finish_root(root.trace_id, lambda: self._readable(root, attributes))
        elif root.sampled:
            # An id nobody drew cannot be the parent of a late child: nothing to remember.
            self.keeper.drop_root(root._trace_id or None)

    def _readable(
        self, root: RootScope, attributes: Callable[[], dict[str, AttributeValue]] | None
    ) -> ReadableSpan:
        attrs = dict(root.attributes or {})
        if attributes is not None:
            attrs.update(attributes())
        if root.reason is not None:
            attrs[KEEP_REASON_ATTRIBUTE] = root.reason
        events: list[Event] = []
        if root.error is not None:
            exc = root.error
            events.append(
                Event(
                    "exception",
                    {
                        "exception.type": type(exc).__qualname__,
                        "exception.message": str(exc),
                        "exception.stacktrace": "".join(traceback.format_exception(exc)),
                    },
                    root.start_ns + root.duration_ns,
                )
            )
        status = (
            Status(StatusCode.ERROR, root.error_description)
            if root.error_description is not None
            else Status(StatusCode.UNSET)
        )
        return ReadableSpan(
            name=root.name,
            context=root.context,
            parent=root.parent,
            resource=self._resource,
            attributes=attrs,
            events=events,
            kind=root.kind,
            instrumentation_scope=self._scope,
            status=status,
            start_time=root.start_ns,
            end_time=root.start_ns + root.duration_ns,
        )
