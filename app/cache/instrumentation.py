"""Hooks the cache manager calls around each operation.

The manager knows nothing about tracing or metrics; the telemetry package implements these hooks.
The no-op default costs one method call per operation.
"""

from __future__ import annotations

from typing import Protocol

CacheOperation = str  # "get" | "set" | "delete"
CacheResult = str  # "hit" | "miss" for reads, "" otherwise


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
