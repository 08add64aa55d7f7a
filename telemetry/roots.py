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
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Callable
from contextvars import Token

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
_DEFAULT_SAMPLER: str = ParentBased(ALWAYS_ON).get_description()  # type: ignore[no-untyped-call]


class RootScope:
    """One open local root; also the buffer its deferred child spans go to."""

    __slots__ = (
        "_context",
        "attributes",
        "buffer_token",
        "duration_ns",
        "error",
        "error_description",
        "kind",
        "limit",
        "name",
        "parent",
        "reason",
        "refused",
        "sampled",
        "span_id",
        "spans",
        "start_ns",
        "start_perf_ns",
        "trace_id",
        "trace_state",
    )

    def __init__(
        self,
        name: str,
        kind: SpanKind,
        trace_id: int,
        span_id: int,
        parent: SpanContext | None,
        sampled: bool,
        limit: int,
        trace_state: TraceState | None = None,
    ) -> None:
        self.name = name
        self.kind = kind
        self.trace_id = trace_id
        self.span_id = span_id
        self.trace_state = trace_state
        self._context: SpanContext | None = None
        self.parent = parent
        self.sampled = sampled
        self.limit = limit
        self.spans: list[DeferredSpan] = []
        self.refused = 0
        self.attributes: dict[str, AttributeValue] = {}
        self.error: BaseException | None = None
        self.error_description: str | None = None
        self.reason: str | None = None
        self.duration_ns = 0
        self.buffer_token: Token[TraceBuffer | None] | None = None
        self.start_ns = 0
        """Wall-clock start, set when the trace is kept (from the monotonic start and the
        duration): most roots are dropped and never need it."""
        self.start_perf_ns = time.perf_counter_ns()

    @property
    def context(self) -> SpanContext:
        """Built on first use: most roots are dropped without anyone asking."""
        if self._context is None:
            self._context = SpanContext(
                self.trace_id,
                self.span_id,
                is_remote=False,
                trace_flags=_SAMPLED if self.sampled else _NOT_SAMPLED,
                trace_state=self.trace_state,
            )
        return self._context

    def add(self, span: DeferredSpan) -> None:
        if len(self.spans) < self.limit:
            self.spans.append(span)
        else:
            self.refused += 1

    def deferred(self) -> tuple[list[DeferredSpan], int]:
        return self.spans, self.refused


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

    def open(self, name: str, kind: SpanKind, parent: Context | None = None) -> RootScope:
        if parent is None and self._default_sampler:
            # The common case (a request without traceparent, the default sampler) answered
            # without asking anyone: a new sampled trace.
            root = RootScope(
                name,
                kind,
                random.getrandbits(128) or 1,
                random.getrandbits(64) or 1,
                None,
                True,
                self.keeper.max_spans_per_trace,
            )
            root.buffer_token = current_buffer.set(root)
            return root
        remote: SpanContext | None = None
        if parent is not None:
            remote = trace.get_current_span(parent).get_span_context()
            if not remote.is_valid:
                remote, parent = None, None
        trace_id = remote.trace_id if remote is not None else random.getrandbits(128) or 1
        trace_state = None
        if self._default_sampler:
            sampled = remote is None or remote.trace_flags.sampled
        else:
            decision = self._sampler.should_sample(parent, trace_id, name, kind)
            sampled = decision.decision is Decision.RECORD_AND_SAMPLE
            trace_state = decision.trace_state
        root = RootScope(
            name,
            kind,
            trace_id,
            random.getrandbits(64) or 1,
            remote,
            sampled,
            self.keeper.max_spans_per_trace,
            trace_state,
        )
        root.buffer_token = current_buffer.set(root)
        return root

    def settle(
        self,
        root: RootScope,
        failed: bool,
        error: BaseException | None = None,
        description: str | None = None,
    ) -> float:
        """Decide the trace's fate while the root is still current; returns its duration (s)."""
        root.duration_ns = duration = time.perf_counter_ns() - root.start_perf_ns
        if failed:
            root.error, root.error_description = error, description or "error"
        if root.sampled:
            keeper = self.keeper
            trace_id = root.trace_id
            root.reason = reason = keeper.decide(trace_id, duration, failed)
            if reason is not None:
                root.start_ns = time.time_ns() - duration
                keeper.settle(trace_id, reason, root)
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
            self.keeper.drop_root(root.trace_id)

    def _readable(
        self, root: RootScope, attributes: Callable[[], dict[str, AttributeValue]] | None
    ) -> ReadableSpan:
        attrs = dict(root.attributes)
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
