"""Local roots: the request (or socket operation) a trace is decided on, made cheap.

A local root is not an SDK span while it runs. It is a `SpanContext` (fresh ids, or the remote
parent's trace id) carried in the OpenTelemetry context as a `NonRecordingSpan`, so everything
below it — SDK child spans, deferred cache spans, exemplars, log correlation — sees a valid,
sampled current span. When it ends, the keep/drop decision is settled; only a kept root is turned
into a `ReadableSpan` (with its attributes built then), so a dropped request pays two clock reads
and two context switches instead of the SDK's span machinery.

The head sampler configured by `OTEL_TRACES_SAMPLER` is still consulted when a root opens.
"""

from __future__ import annotations

import random
import time
import traceback
from collections.abc import Callable
from contextvars import Token
from dataclasses import dataclass, field

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace.sampling import Decision, Sampler
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
)
from opentelemetry.util.types import AttributeValue

from telemetry.tracing import KEEP_REASON_ATTRIBUTE, SlowTraceKeeper, TraceBuffer, current_buffer

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_NOT_SAMPLED = TraceFlags(TraceFlags.DEFAULT)


@dataclass(slots=True)
class RootScope:
    name: str
    kind: SpanKind
    context: SpanContext
    parent: SpanContext | None
    start_ns: int
    start_perf_ns: int
    buffer: TraceBuffer | None
    context_token: object
    buffer_token: Token[TraceBuffer | None]
    attributes: dict[str, AttributeValue] = field(default_factory=dict)
    error: BaseException | None = None
    error_description: str | None = None
    reason: str | None = None
    duration_ns: int = 0

    @property
    def sampled(self) -> bool:
        return self.buffer is not None


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
        self._resource = resource
        self._scope = scope

    def open(self, name: str, kind: SpanKind, parent: Context | None = None) -> RootScope:
        remote = trace.get_current_span(parent).get_span_context() if parent is not None else None
        if remote is not None and not remote.is_valid:
            remote, parent = None, None
        trace_id = remote.trace_id if remote is not None else random.getrandbits(128) or 1
        decision = self._sampler.should_sample(parent, trace_id, name, kind)
        sampled = decision.decision is Decision.RECORD_AND_SAMPLE
        context = SpanContext(
            trace_id,
            random.getrandbits(64) or 1,
            is_remote=False,
            trace_flags=_SAMPLED if sampled else _NOT_SAMPLED,
            trace_state=decision.trace_state,
        )
        buffer = TraceBuffer(context, self.keeper.max_spans_per_trace) if sampled else None
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(context), parent))
        return RootScope(
            name=name,
            kind=kind,
            context=context,
            parent=remote,
            start_ns=time.time_ns(),
            start_perf_ns=time.perf_counter_ns(),
            buffer=buffer,
            context_token=token,
            buffer_token=current_buffer.set(buffer),
        )

    def settle(
        self,
        root: RootScope,
        failed: bool,
        error: BaseException | None = None,
        description: str | None = None,
    ) -> float:
        """Decide the trace's fate while the root is still current; returns its duration (s)."""
        root.duration_ns = time.perf_counter_ns() - root.start_perf_ns
        if failed:
            root.error, root.error_description = error, description or "error"
        if root.buffer is not None:
            root.reason = self.keeper.decide(root.context.trace_id, root.duration_ns, failed)
            self.keeper.settle(root.context.trace_id, root.reason, root.buffer)
        return root.duration_ns / 1e9

    def close(
        self, root: RootScope, attributes: Callable[[], dict[str, AttributeValue]] | None = None
    ) -> None:
        """Leave the root's context; export it (and its children) if it was kept."""
        current_buffer.reset(root.buffer_token)
        otel_context.detach(root.context_token)  # type: ignore[arg-type]
        if root.buffer is not None:
            self.keeper.finish_root(root.context.trace_id, lambda: self._readable(root, attributes))

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
