from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from app.cache import CacheManager, CircuitBreaker, MemcachedBackend, MemoryBackend


def build_manager(servers: list[str] | None = None, **overrides: object) -> CacheManager:
    memory = MemoryBackend(max_entries=1000, max_bytes=8 << 20)
    shared = (
        MemcachedBackend(servers, pool_min=2, pool_max=8, connect_timeout=0.05, timeout=0.05)
        if servers
        else None
    )
    options: dict[str, object] = {
        "memory": memory,
        "shared": shared,
        "breaker": CircuitBreaker(failure_threshold=3, cooldown=0.5),
        "default_ttl": 60,
        "key_prefix": "test",
    }
    options.update(overrides)
    return CacheManager(**options)  # type: ignore[arg-type]


@pytest.fixture(
    params=["memory", pytest.param("memcached", marks=pytest.mark.memcached)],
)
async def manager(request: pytest.FixtureRequest) -> AsyncIterator[CacheManager]:
    """The same behaviour must hold on both backends."""
    servers = [request.getfixturevalue("memcached").address] if request.param == "memcached" else []
    mgr = build_manager(servers)
    await mgr.start()
    try:
        yield mgr
    finally:
        await mgr.close()
