"""Where a cached answer lives and how it is computed, named once for every reader.

The service's own methods (decoded values, for the WebSocket feed and other code) and the HTTP
routes (stored bytes, sent as they are) read the same entry through the same source, so the two
never disagree on a namespace, a key or a TTL.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from app.cache.manager import CacheEntry, CacheManager


@dataclass(frozen=True, slots=True)
class CachedSource:
    namespace: str
    key: str
    load: Callable[[], Awaitable[Any]]
    ttl: int | None = None

    async def value(self, cache: CacheManager) -> Any:
        """The decoded value, loaded and stored on a miss."""
        return await cache.get_or_set(self.namespace, self.key, self.load, self.ttl)

    async def entry(self, cache: CacheManager) -> CacheEntry:
        """The stored JSON bytes, loaded and stored on a miss."""
        return await cache.get_or_set_entry(self.namespace, self.key, self.load, self.ttl)
