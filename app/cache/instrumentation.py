"""Hooks the cache manager calls around each operation.

The manager knows nothing about tracing or metrics; the telemetry package implements these hooks.
The no-op default costs one method call per operation.
"""

from __future__ import annotations

from typing import Protocol

CacheOperation = str  # "get" | "set" | "delete"
CacheResult = str  # "hit" | "miss" for reads, "" otherwise

SERVED_TIER_SCOPE_KEY = "market_api.served_from_tier"
"""ASGI scope key set on a request answered before routing from the in-process tier (value: the
tier, `near` or `memory`). Such a lookup is one dict read, cheaper than the two clock reads that
would time it, so it is counted (`CacheStats.requests`) but gets no operation scope; the request's
server span carries the tier instead, should its trace be kept."""


class CacheOperationScope(Protocol):
    def finish(self, backend: str, result: CacheResult, error: BaseException | None) -> None:
        """Called at most once, when the operation has an answer (or failed).

        A scope never finished records nothing: the manager drops the scope of an in-process
        peek that found nothing usable, because the full lookup that follows records it.
        """


class CacheInstrumentation(Protocol):
    def start(self, operation: CacheOperation, namespace: str) -> CacheOperationScope:
        """Called before the operation touches any backend."""


class _NoopScope:
    __slots__ = ()

    def finish(self, backend: str, result: CacheResult, error: BaseException | None) -> None:
        return None


class NoopCacheInstrumentation:
    __slots__ = ()
    _scope = _NoopScope()

    def start(self, operation: CacheOperation, namespace: str) -> CacheOperationScope:
        return self._scope
