"""Cache telemetry: a span and a duration per manager operation; counters read from its stats.

Spans are deferred (see tracing.py) while a request is open, and never carry the raw key: only
operation, namespace, backend, result and breaker state, all bounded.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation
from opentelemetry.trace import Status, StatusCode, Tracer
from opentelemetry.util.types import AttributeValue

from app.cache.breaker import CircuitBreaker
from app.cache.instrumentation import CacheOperationScope, CacheResult
from app.cache.manager import CacheManager
from telemetry.instruments import Instruments
from telemetry.tracing import SlowTraceKeeper, TraceBuffer, current_buffer


def _describe(data: tuple[object, ...]) -> tuple[str, dict[str, AttributeValue]]:
    """Name and attributes of a deferred cache span, built only for kept traces."""
    operation, namespace, backend, result, breaker = data
    attributes: dict[str, AttributeValue] = {
        "cache.operation": str(operation),
        "cache.namespace": str(namespace),
        "cache.backend": str(backend),
        "cache.breaker.state": str(breaker),
    }
    if result:
        attributes["cache.result"] = str(result)
    return f"cache.{operation} {namespace}", attributes


class _CacheScope:
    __slots__ = ("_buffer", "_namespace", "_operation", "_owner", "_t0")

    def __init__(self, owner: CacheTelemetry, operation: str, namespace: str) -> None:
        self._owner = owner
        self._operation = operation
        self._namespace = namespace
        self._buffer: TraceBuffer | None = current_buffer.get()
        self._t0 = time.perf_counter_ns()

    def finish(self, backend: str, result: CacheResult, error: BaseException | None) -> None:
        t1 = time.perf_counter_ns()
        owner = self._owner
        buffer = self._buffer
        operation = self._operation
        # Every cache hit of every request comes here: the duration is recorded inline, with the
        # ratio part of the keep decision (the only part known mid-request) for the exemplar.
        key = (operation, backend)
        attrs = owner.attrs.get(key) or owner.new_attrs(key)
        exemplar = buffer.context if buffer is not None and buffer.ratio_kept else None
        owner.duration.record((t1 - self._t0) / 1e9, key, attrs, exemplar)
        data = (operation, self._namespace, backend, result, owner.breaker.state)
        reason = type(error).__name__ if error is not None else None
        if buffer is not None:
            buffer.add((self._t0, t1, _describe, data, reason))
            return
        # No request around it (a background job): a real span, decided on its own.
        name, attributes = _describe(data)
        end_ns = time.time_ns()
        span = owner.tracer.start_span(
            name, attributes=attributes, start_time=end_ns - (t1 - self._t0)
        )
        if reason:
            span.set_status(Status(StatusCode.ERROR, reason))
            span.set_attribute("error.type", reason)
        span.end(end_time=end_ns)


class CacheTelemetry:
    """Implements `app.cache.instrumentation.CacheInstrumentation`."""

    def __init__(
        self,
        tracer: Tracer,
        instruments: Instruments,
        keeper: SlowTraceKeeper,
        breaker: CircuitBreaker,
    ) -> None:
        """`breaker` is the one the instrumented manager is built with: its state goes on each
        span."""
        self.tracer = tracer
        self.keeper = keeper
        self.duration = instruments.cache_duration
        self.attrs: dict[tuple[str, str], dict[str, AttributeValue]] = {}
        self.breaker = breaker

    def start(self, operation: str, namespace: str) -> CacheOperationScope:
        return _CacheScope(self, operation, namespace)

    def new_attrs(self, key: tuple[str, str]) -> dict[str, AttributeValue]:
        operation, backend = key
        attrs = self.attrs[key] = {"cache.operation": operation, "cache.backend": backend}
        return attrs


def register_cache_observers(meter: Meter, manager: CacheManager) -> None:
    """Counters and gauges read from the manager at collection time."""
    stats = manager.stats

    def requests(_: CallbackOptions) -> Iterable[Observation]:
        for (namespace, result, backend), count in list(stats.requests.items()):
            yield Observation(
                count,
                {"cache.namespace": namespace, "cache.result": result, "cache.backend": backend},
            )

    def fallbacks(_: CallbackOptions) -> Iterable[Observation]:
        for reason, count in list(stats.fallbacks.items()):
            yield Observation(count, {"reason": reason})

    def leases(_: CallbackOptions) -> Iterable[Observation]:
        for outcome, count in list(stats.leases.items()):
            yield Observation(count, {"cache.lease.outcome": outcome})

    def breaker(_: CallbackOptions) -> Iterable[Observation]:
        yield Observation(manager.breaker.state.gauge_value)

    def connections(_: CallbackOptions) -> Iterable[Observation]:
        pool = manager.shared.pool_usage() if manager.shared is not None else None
        if pool is None:
            return
        for state, count in (("idle", pool.idle), ("used", pool.used)):
            yield Observation(
                count,
                {
                    "db.client.connection.state": state,
                    "db.client.connection.pool.name": "memcached",
                },
            )

    meter.create_observable_counter(
        "cache.requests", [requests], unit="{request}", description="Cache reads by result."
    )
    meter.create_observable_counter(
        "cache.fallbacks",
        [fallbacks],
        unit="{operation}",
        description="Operations served by the in-memory fallback, by reason.",
    )
    meter.create_observable_counter(
        "cache.leases",
        [leases],
        unit="{miss}",
        description="Misses loaded under a lease shared across replicas, by outcome.",
    )
    meter.create_observable_gauge(
        "cache.breaker.state",
        [breaker],
        unit="1",
        description="Circuit breaker in front of memcached: 0 closed, 1 half-open, 2 open.",
    )
    meter.create_observable_up_down_counter(
        "db.client.connection.count",
        [connections],
        unit="{connection}",
        description="Pooled memcached connections by state.",
    )
