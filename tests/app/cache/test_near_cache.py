"""The near-cache in front of memcached: what it serves, how long, how big, how it is counted."""

from __future__ import annotations

import asyncio

import pytest

from app.cache import MISSING, CacheManager, MemoryBackend
from app.cache.manager import NEAR
from devstack.process import ManagedProcess
from tests.app.cache.conftest import build_manager

pytestmark = pytest.mark.memcached


def with_near(
    memcached: ManagedProcess, *, refresh: float = 0.3, entries: int = 100, size: int = 1 << 20
) -> CacheManager:
    return build_manager(
        [memcached.address],
        near=MemoryBackend(max_entries=entries, max_bytes=size),
        version_refresh=refresh,
    )


async def test_hits_after_a_memcached_read_are_served_near_and_labelled(
    memcached: ManagedProcess,
) -> None:
    manager = with_near(memcached)
    await manager.start()
    try:
        await manager.set("api", "k", {"v": 1})
        assert await manager.get("api", "k") == {"v": 1}  # memcached answers, copy kept near
        assert await manager.get("api", "k") == {"v": 1}
        entry = await manager.get_entry("api", "k")
        assert entry is not None
        assert entry.tier == NEAR
        assert 0 < entry.seconds_left <= 0.3
        assert manager.stats.requests[("api", "hit", "memcached")] == 1
        assert manager.stats.requests[("api", "hit", NEAR)] == 2
        assert manager.stats.hits == 3  # one lookup, one count, whichever tier answered
    finally:
        await manager.close()


async def test_a_write_elsewhere_is_seen_within_the_refresh_bound(
    memcached: ManagedProcess,
) -> None:
    a, b = with_near(memcached), with_near(memcached)
    await a.start()
    await b.start()
    try:
        await a.set("dashboard", "overview", {"v": 1})
        assert await b.get("dashboard", "overview") == {"v": 1}
        await a.set("dashboard", "overview", {"v": 2})
        assert await a.get("dashboard", "overview") == {"v": 2}  # its own write: no stale copy
        assert await b.get("dashboard", "overview") == {"v": 1}  # b's near copy, within bound
        await asyncio.sleep(0.35)
        assert await b.get("dashboard", "overview") == {"v": 2}
    finally:
        await a.close()
        await b.close()


async def test_invalidation_elsewhere_is_seen_within_the_same_bound_as_without_it(
    memcached: ManagedProcess,
) -> None:
    a, b = with_near(memcached), with_near(memcached)
    await a.start()
    await b.start()
    try:
        await a.set("api", "movers:10", [1])
        assert await b.get("api", "movers:10") == [1]
        assert await b.get("api", "movers:10") == [1]  # near
        await a.invalidate("api")
        assert await a.get("api", "movers:10") is None
        await asyncio.sleep(0.35)  # b trusts its version (and so its copy) for 0.3 s
        assert await b.get("api", "movers:10") is None
        assert b.peek("api", "movers:10", lambda entry: entry) is None
    finally:
        await a.close()
        await b.close()


async def test_a_copy_never_outlives_the_items_ttl(memcached: ManagedProcess) -> None:
    manager = with_near(memcached, refresh=5.0)
    await manager.start()
    try:
        await manager.set("market", "short", 1, ttl=1)
        entry = await manager.get_entry("market", "short", ttl=1)
        assert entry is not None
        assert entry.seconds_left <= 1
        left = manager.peek("market", "short", lambda near: near.seconds_left)
        assert left is not None
        assert 0 < left <= 1
    finally:
        await manager.close()


async def test_delete_drops_the_near_copy(memcached: ManagedProcess) -> None:
    manager = with_near(memcached)
    await manager.start()
    try:
        await manager.set("api", "k", 1)
        assert await manager.get("api", "k") == 1
        assert await manager.delete("api", "k")
        assert await manager.get("api", "k", MISSING) is MISSING
    finally:
        await manager.close()


async def test_capped_by_entries_and_by_bytes(memcached: ManagedProcess) -> None:
    manager = with_near(memcached, entries=3, size=4096)
    await manager.start()
    assert manager.near is not None
    try:
        for i in range(10):
            await manager.set("api", f"k{i}", i)
            await manager.get("api", f"k{i}")
        assert manager.near.entries == 3
        await manager.set("api", "big", "x" * 3000)
        await manager.get("api", "big")
        await manager.set("api", "big2", "y" * 3000)
        await manager.get("api", "big2")
        assert manager.near.bytes_used <= 4096
        assert manager.near.entries <= 2
        await manager.set("api", "huge", "z" * 5000)  # larger than the whole near-cache
        assert await manager.get("api", "huge") == "z" * 5000
        assert await manager.get("api", "huge") == "z" * 5000
        assert manager.stats.requests[("api", "hit", NEAR)] == 0
    finally:
        await manager.close()


async def test_breaker_open_reads_skip_nothing_they_should_not(memcached: ManagedProcess) -> None:
    """A near copy is bounded like any other: an outage does not extend its life."""
    manager = with_near(memcached, refresh=0.2)
    await manager.start()
    try:
        await manager.set("api", "k", "v")
        assert await manager.get("api", "k") == "v"
        memcached.kill()
        assert await manager.get("api", "k") == "v"  # near, within its bound
        await asyncio.sleep(0.25)
        assert await manager.get("api", "k", MISSING) is MISSING  # memory fallback is empty
        assert manager.stats.errors >= 1
    finally:
        await manager.close()
