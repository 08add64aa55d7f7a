"""Build a cache manager from settings."""

from __future__ import annotations

from app.cache.backends.memcached import MemcachedBackend
from app.cache.backends.memory import MemoryBackend
from app.cache.breaker import CircuitBreaker
from app.cache.instrumentation import CacheInstrumentation
from app.cache.lease import LeasePolicy
from app.cache.manager import CacheManager
from app.cache.namespaces import NAMESPACES, namespace_ttls
from app.settings import Settings


def build_cache_breaker(settings: Settings) -> CircuitBreaker:
    """Built apart from the manager so its hooks can be given the same breaker."""
    return CircuitBreaker(settings.cache_breaker_failures, settings.cache_breaker_cooldown)


LEASE_WAIT_MARGIN = 0.5
"""Seconds beyond the upstream timeout a waiter gives the lease holder: time to store."""


def build_lease_policy(settings: Settings) -> LeasePolicy | None:
    """Waiters wait as long as one upstream call may take, so a live holder's value always
    reaches them first; None when leases are turned off."""
    wait = settings.cache_lease_wait
    if wait is None:
        wait = settings.upstream_timeout + LEASE_WAIT_MARGIN
    if wait <= 0:
        return None
    return LeasePolicy(ttl=settings.cache_lease_ttl, wait=wait)


def build_cache_manager(
    settings: Settings,
    instrumentation: CacheInstrumentation | None = None,
    *,
    breaker: CircuitBreaker | None = None,
) -> CacheManager:
    memory = MemoryBackend(settings.cache_memory_max_entries, settings.cache_memory_max_bytes)
    shared = (
        MemcachedBackend(
            settings.memcached_servers,
            pool_min=settings.cache_connection_pool_min,
            pool_max=settings.cache_connection_pool_max,
            connect_timeout=settings.memcached_connect_timeout,
            timeout=settings.memcached_timeout,
            dead_timeout=settings.memcached_dead_timeout,
        )
        if settings.memcached_servers
        else None
    )
    near = (
        MemoryBackend(settings.cache_near_max_entries, settings.cache_near_max_bytes)
        if shared is not None and settings.cache_near_max_entries > 0
        else None
    )
    return CacheManager(
        memory=memory,
        shared=shared,
        near=near,
        breaker=breaker or build_cache_breaker(settings),
        default_ttl=settings.cache_default_ttl,
        namespace_ttls=namespace_ttls(settings),
        namespaces=NAMESPACES,
        key_prefix=settings.cache_key_prefix,
        max_item_bytes=settings.cache_max_item_bytes,
        version_refresh=settings.cache_version_refresh,
        cleanup_interval=settings.cache_cleanup_interval,
        instrumentation=instrumentation,
        lease=build_lease_policy(settings) if shared is not None else None,
    )
