"""The small private interface every cache backend implements.

The manager adds namespacing, serialization, breaker, fallback, single-flight and instrumentation
once, on top of these few byte-level operations.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Literal

FailureReason = Literal["timeout", "connection", "pool_exhausted", "server_error"]


class CacheBackendError(Exception):
    """The backend could not answer; the manager counts it and falls back."""

    def __init__(self, reason: FailureReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: FailureReason = reason


class CacheBackend(ABC):
    """Byte-level store. TTLs are whole seconds; 0 means no expiry."""

    name: str

    @abstractmethod
    async def _get(self, key: str) -> bytes | None: ...

    @abstractmethod
    async def _set(self, key: str, value: bytes, ttl: int) -> bool:
        """Store the value; False if the store refused it (too large)."""

    @abstractmethod
    async def _add(self, key: str, value: bytes, ttl: int) -> bool:
        """Store only if absent; True if stored."""

    @abstractmethod
    async def _incr(self, key: str, delta: int) -> int | None:
        """Increment an integer value; None if the key is absent."""

    @abstractmethod
    async def _delete(self, key: str) -> bool:
        """Remove the key; True if it existed."""

    async def start(self) -> None:
        """Open connections; never raises because a store is down."""

    async def close(self) -> None:
        """Release connections and threads."""
