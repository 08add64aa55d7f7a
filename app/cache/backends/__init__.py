"""Cache backends: in-process memory and memcached."""

from app.cache.backends.base import CacheBackend, CacheBackendError, PoolUsage
from app.cache.backends.memcached import MemcachedBackend
from app.cache.backends.memory import MemoryBackend

__all__ = ["CacheBackend", "CacheBackendError", "MemcachedBackend", "MemoryBackend", "PoolUsage"]
