"""The one public interface every cache backend implements.

The manager adds namespacing, serialization, breaker, fallback, near-cache, single-flight and
instrumentation once, on top of these few byte-level operations; it never reaches past them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

FailureReason = Literal["timeout", "connection", "pool_exhausted", "server_error"]


class CacheBackendError(Exception):
    """The backend could not answer; the manager counts it and falls back."""

    def __init__(self, reason: FailureReason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: FailureReason = reason


@dataclass(frozen=True, slots=True)
class PoolUsage:
    """Connections of a backend's pool(s) by state, for `db.client.connection.count`."""

    idle: int
    used: int


@dataclass(frozen=True, slots=True)
class ServerHealth:
    """One server of a shared store as the last ping saw it."""

    reachable: bool
    in_ring: bool
    """Keys are placed on it; False while it is left out after failing."""


class CacheBackend(ABC):
    """Byte-level store. TTLs are whole seconds; 0 means no expiry."""

    name: str

    @property
    def servers(self) -> list[str]:
        """Addresses of the servers behind it (none for an in-process store)."""
        return []

    @abstractmethod
    async def get(self, key: str) -> bytes | None: ...

    @abstractmethod
    async def set(self, key: str, value: bytes, ttl: int) -> bool:
        """Store the value; False if the store refused it (too large)."""

    @abstractmethod
    async def add(self, key: str, value: bytes, ttl: int) -> bool:
        """Store only if absent; True if stored."""

    @abstractmethod
    async def incr(self, key: str, delta: int) -> int | None:
        """Increment an integer value; None if the key is absent."""

    @abstractmethod
    async def delete(self, key: str) -> bool:
        """Remove the key; True if it existed."""

    async def ping(self) -> bool:
        """True if every server answers; an in-process store always does."""
        return True

    @property
    def server_health(self) -> dict[str, ServerHealth]:
        """Each server's state at the last `ping`; empty for an in-process store."""
        return {}

    def pool_usage(self) -> PoolUsage | None:
        """Pooled connections by state; None for a store without connections."""
        return None

    async def start(self) -> None:
        """Open connections; never raises because a store is down."""

    async def close(self) -> None:
        """Release connections and threads."""
