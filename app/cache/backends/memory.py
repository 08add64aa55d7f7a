"""In-process LRU cache with TTLs, bounded by entry count and by bytes.

It is the cache of a single instance (no memcached configured), the fallback while the breaker is
open, and the near-cache in front of memcached, so it must never grow without bound whatever
callers store.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import NamedTuple

from app.cache.backends.base import CacheBackend

# Rough per-entry bookkeeping cost (dict slot, tuple, float) so that many tiny entries still count.
ENTRY_OVERHEAD_BYTES = 96


class MemoryEntry(NamedTuple):
    value: bytes
    expires_at: float  # monotonic seconds; 0.0 = never
    size: int


class MemoryBackend(CacheBackend):
    """Least-recently-used eviction; expired entries go on read and on each sweep."""

    name = "memory"

    def __init__(
        self,
        max_entries: int,
        max_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._data: OrderedDict[str, MemoryEntry] = OrderedDict()
        self._bytes = 0
        self.evictions = 0
        self.expirations = 0

    @property
    def entries(self) -> int:
        return len(self._data)

    @property
    def bytes_used(self) -> int:
        return self._bytes

    def get_now(self, key: str) -> bytes | None:
        """Synchronous read, so the manager's hot path does not need an extra await."""
        entry = self.entry_now(key)
        return None if entry is None else entry.value

    def lookup_now(self, key: str) -> tuple[bytes, float] | None:
        """The value and the seconds it has left (infinite without expiry), or None."""
        entry = self.entry_now(key)
        if entry is None:
            return None
        left = entry.expires_at - self._clock() if entry.expires_at else math.inf
        return entry.value, left

    def entry_now(self, key: str) -> MemoryEntry | None:
        """The live entry with its expiry (monotonic; 0.0 = never), or None."""
        entry = self._data.get(key)
        if entry is None:
            return None
        if entry.expires_at and entry.expires_at <= self._clock():
            self._remove(key)
            self.expirations += 1
            return None
        self._data.move_to_end(key)
        return entry

    def set_now(self, key: str, value: bytes, ttl: float) -> bool:
        size = len(key) + len(value) + ENTRY_OVERHEAD_BYTES
        if size > self.max_bytes:
            return False
        if key in self._data:
            self._remove(key)
        expires_at = self._clock() + ttl if ttl > 0 else 0.0
        self._data[key] = MemoryEntry(value, expires_at, size)
        self._bytes += size
        while len(self._data) > self.max_entries or self._bytes > self.max_bytes:
            oldest = next(iter(self._data))
            self._remove(oldest)
            self.evictions += 1
        return True

    def delete_now(self, key: str) -> bool:
        if key in self._data:
            self._remove(key)
            return True
        return False

    def sweep(self) -> int:
        """Drop every expired entry; returns how many went."""
        now = self._clock()
        expired = [k for k, e in self._data.items() if e.expires_at and e.expires_at <= now]
        for key in expired:
            self._remove(key)
        self.expirations += len(expired)
        return len(expired)

    def clear(self) -> None:
        self._data.clear()
        self._bytes = 0

    def _remove(self, key: str) -> None:
        entry = self._data.pop(key)
        self._bytes -= entry.size

    async def get(self, key: str) -> bytes | None:
        return self.get_now(key)

    async def set(self, key: str, value: bytes, ttl: int) -> bool:
        return self.set_now(key, value, ttl)

    async def add(self, key: str, value: bytes, ttl: int) -> bool:
        if self.get_now(key) is not None:
            return False
        return self.set_now(key, value, ttl)

    async def incr(self, key: str, delta: int) -> int | None:
        entry = self._data.get(key)
        current = self.get_now(key)
        if entry is None or current is None:
            return None
        new = int(current) + delta
        remaining = entry.expires_at - self._clock() if entry.expires_at else 0.0
        self.set_now(key, str(new).encode(), max(remaining, 0.0))
        return new

    async def delete(self, key: str) -> bool:
        return self.delete_now(key)
