"""`CacheManager.force_miss`: the fault-injection switch that turns every read into a miss."""

from __future__ import annotations

import pytest

from app.cache import MISSING, CacheManager


async def test_forced_reads_miss_and_count_as_misses(manager: CacheManager) -> None:
    await manager.set("market", "k", {"price": 1.5})
    manager.force_miss = True
    assert await manager.get("market", "k", MISSING) is MISSING
    assert await manager.get("market", "k") is None
    backend = "memcached" if manager.shared else "memory"
    assert manager.stats.requests[("market", "miss", backend)] == 2
    assert manager.stats.hits == 0

    # The stored value was never touched: switching back finds it again.
    manager.force_miss = False
    assert await manager.get("market", "k") == {"price": 1.5}
    assert manager.stats.requests[("market", "hit", backend)] == 1


async def test_forced_misses_go_to_the_loader_every_time(manager: CacheManager) -> None:
    calls = 0

    async def loader() -> int:
        nonlocal calls
        calls += 1
        return calls

    assert await manager.get_or_set("api", "n", loader) == 1
    assert await manager.get_or_set("api", "n", loader) == 1
    manager.force_miss = True
    assert await manager.get_or_set("api", "n", loader) == 2
    assert await manager.get_or_set("api", "n", loader) == 3
    manager.force_miss = False
    # The last loaded value was stored as usual.
    assert await manager.get_or_set("api", "n", loader) == 3
    assert calls == 3


async def test_forced_reads_still_refuse_unknown_namespaces(manager: CacheManager) -> None:
    manager.force_miss = True
    with pytest.raises(ValueError, match="unknown cache namespace"):
        await manager.get("nope", "k")
