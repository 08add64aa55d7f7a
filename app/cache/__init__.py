"""Unified cache: memcached with an in-memory fallback behind one namespaced API."""

from app.cache.backends import CacheBackend, CacheBackendError, MemcachedBackend, MemoryBackend
from app.cache.breaker import BreakerState, CircuitBreaker
from app.cache.decorator import cached
from app.cache.factory import build_cache_breaker, build_cache_manager
from app.cache.manager import DEFAULT_NAMESPACES, MISSING, CacheManager
from app.cache.stats import CacheStats

__all__ = [
    "DEFAULT_NAMESPACES",
    "MISSING",
    "BreakerState",
    "CacheBackend",
    "CacheBackendError",
    "CacheManager",
    "CacheStats",
    "CircuitBreaker",
    "MemcachedBackend",
    "MemoryBackend",
    "build_cache_breaker",
    "build_cache_manager",
    "cached",
]
