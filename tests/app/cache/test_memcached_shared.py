"""What only a shared store shows: several instances, foreign data, the real item limit."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from pymemcache.client.base import Client

from app.cache import MISSING, CircuitBreaker
from app.cache.keys import data_key
from devstack.process import ManagedProcess
from tests.app.cache.conftest import build_manager

pytestmark = pytest.mark.memcached


async def test_invalidation_reaches_every_instance(memcached: ManagedProcess) -> None:
    a = build_manager([memcached.address], version_refresh=0.2)
    b = build_manager([memcached.address], version_refresh=0.2)
    await a.start()
    await b.start()
    try:
        await a.set("dashboard", "overview", {"v": 1})
        assert await b.get("dashboard", "overview") == {"v": 1}
        await a.invalidate("dashboard")
        assert await a.get("dashboard", "overview") is None
        await asyncio.sleep(0.3)  # b trusts its version for version_refresh seconds
        assert await b.get("dashboard", "overview") is None
    finally:
        await a.close()
        await b.close()


async def test_foreign_bytes_are_never_unpickled_just_dropped(memcached: ManagedProcess) -> None:
    manager = build_manager([memcached.address])
    await manager.start()
    try:
        await manager.set("api", "k", "ok")
        version = manager._versions["api"][0]
        raw = Client(("127.0.0.1", memcached.port))
        # A pickle that would call os.system if anything unpickled it.
        poisoned = b"cos\nsystem\n(S'touch /tmp/pwned-by-cache'\ntR."
        raw.set(data_key("test", "api", version, "k"), poisoned, noreply=False)
        assert await manager.get("api", "k", MISSING) is MISSING
        assert manager.stats.decode_errors == 1
        assert raw.get(data_key("test", "api", version, "k")) is None
        assert not Path("/tmp/pwned-by-cache").exists()  # noqa: ASYNC240 (test-only check)
        raw.close()
    finally:
        await manager.close()


async def test_version_survives_eviction_without_reusing_old_numbers(
    memcached: ManagedProcess,
) -> None:
    manager = build_manager([memcached.address], version_refresh=0)
    await manager.start()
    try:
        await manager.set("market", "k", 1)
        old = manager._versions["market"][0]
        raw = Client(("127.0.0.1", memcached.port))
        raw.delete("test:market:version", noreply=False)  # as if memcached evicted it
        raw.close()
        await asyncio.sleep(0.002)
        await manager.set("market", "k2", 2)
        assert manager._versions["market"][0] >= old
    finally:
        await manager.close()


async def test_item_over_memcached_limit_is_not_sent(memcached: ManagedProcess) -> None:
    manager = build_manager([memcached.address], max_item_bytes=2_000_000)
    await manager.start()
    try:
        # Bigger than memcached's 1 MiB item limit but under ours: memcached refuses it.
        assert not await manager.set("api", "big", "x" * 1_500_000)
        assert await manager.get("api", "big", MISSING) is MISSING
        assert manager.stats.oversized == 1
        assert manager.stats.errors == 0
        assert manager.breaker.consecutive_failures == 0
    finally:
        await manager.close()


async def test_calls_in_flight_never_exceed_the_pool(memcached: ManagedProcess) -> None:
    manager = build_manager([memcached.address])
    await manager.start()
    assert manager.shared is not None
    try:
        await asyncio.gather(*(manager.set("api", f"k{i}", i) for i in range(500)))
        values = await asyncio.gather(*(manager.get("api", f"k{i}") for i in range(500)))
        assert values == list(range(500))
        threads = [t for t in threading.enumerate() if t.name.startswith("memcached")]
        assert 0 < len(threads) <= 8
        usage = manager.shared.pool_usage()
        assert usage is not None
        assert usage.used == 0
        assert 2 <= usage.idle <= 8
    finally:
        await manager.close()


async def test_invalidation_during_an_outage_is_replayed_when_memcached_answers_again(
    memcached: ManagedProcess,
) -> None:
    manager = build_manager(
        [memcached.address], version_refresh=0.05, breaker=CircuitBreaker(2, cooldown=0.2)
    )
    await manager.start()
    try:
        await manager.set("dashboard", "overview", {"v": "old"})
        # A partition: memcached keeps its data but this instance cannot reach it.
        manager.breaker.record_failure()
        manager.breaker.record_failure()
        await manager.invalidate("dashboard")
        assert await manager.get("dashboard", "overview") is None  # memory, new version
        await asyncio.sleep(0.3)  # cooldown over: the next call probes and closes the breaker
        await manager.get("market", "probe")
        await asyncio.sleep(0.1)  # the local version is stale: it is read from memcached again
        assert manager.breaker.state.value == "closed"
        assert await manager.get("dashboard", "overview") is None, "old entry came back"
        other = build_manager([memcached.address], version_refresh=0)
        await other.start()
        assert await other.get("dashboard", "overview") is None
        await other.close()
    finally:
        await manager.close()
