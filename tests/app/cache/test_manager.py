"""Behaviour of the cache manager that must be identical on memory and on real memcached."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import pytest

from app.cache import MISSING, CacheManager, cached


async def test_miss_then_hit_and_stats(manager: CacheManager) -> None:
    assert await manager.get("market", "k") is None
    assert await manager.set("market", "k", {"price": 1.5})
    assert await manager.get("market", "k") == {"price": 1.5}
    assert manager.stats.hits == 1
    assert manager.stats.misses == 1
    assert manager.stats.hit_rate == 0.5
    expected_backend = "memcached" if manager.shared else "memory"
    assert manager.stats.requests[("market", "hit", expected_backend)] == 1


async def test_none_is_a_cacheable_value(manager: CacheManager) -> None:
    await manager.set("api", "nothing", None)
    assert await manager.get("api", "nothing", MISSING) is None
    assert await manager.get("api", "absent", MISSING) is MISSING
    calls = 0

    async def loader() -> None:
        nonlocal calls
        calls += 1

    assert await manager.get_or_set("api", "n2", loader) is None
    assert await manager.get_or_set("api", "n2", loader) is None
    assert calls == 1


async def test_ttl_expiry(manager: CacheManager) -> None:
    await manager.set("market", "short", 1, ttl=1)
    await manager.set("market", "long", 2, ttl=30)
    assert await manager.get("market", "short") == 1
    await asyncio.sleep(2.2)  # memcached clock has one-second granularity
    assert await manager.get("market", "short") is None
    assert await manager.get("market", "long") == 2


async def test_namespaces_are_separate_and_invalidate_alone(manager: CacheManager) -> None:
    await manager.set("market", "k", "m")
    await manager.set("analysis", "k", "a")
    assert await manager.get("market", "k") == "m"
    assert await manager.get("analysis", "k") == "a"
    before = await manager.invalidate("market")
    assert await manager.get("market", "k") is None
    assert await manager.get("analysis", "k") == "a"
    await manager.set("market", "k", "m2")
    assert await manager.get("market", "k") == "m2"
    assert await manager.invalidate("market") == before + 1


async def test_unknown_namespace_is_an_error(manager: CacheManager) -> None:
    with pytest.raises(ValueError, match="unknown cache namespace"):
        await manager.get("nope", "k")


@pytest.mark.parametrize("key", ["ключ-🚀", "k" * 1024, "with spaces\tand\ncontrol", ""])
async def test_unicode_long_and_odd_keys(manager: CacheManager, key: str) -> None:
    await manager.set("api", key, [key])
    assert await manager.get("api", key) == [key]
    assert await manager.get("api", key + "x") is None
    assert await manager.get("market", key) is None


async def test_unserializable_value_raises_a_clear_type_error(manager: CacheManager) -> None:
    with pytest.raises(TypeError, match="JSON-serializable"):
        await manager.set("api", "k", {"s": {1, 2}})
    with pytest.raises(TypeError, match="JSON-serializable"):
        await manager.set("api", "k", object())
    assert await manager.get("api", "k", MISSING) is MISSING


async def test_json_round_trip_of_common_types(manager: CacheManager) -> None:
    when = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    await manager.set("api", "k", {"t": (1, 2), "when": when, "n": 1.5, "b": True})
    assert await manager.get("api", "k") == {
        "t": [1, 2],
        "when": "2026-01-02T03:04:05+00:00",
        "n": 1.5,
        "b": True,
    }


async def test_oversized_value_is_not_cached_but_caller_gets_it(
    manager: CacheManager, caplog: pytest.LogCaptureFixture
) -> None:
    big = "x" * (manager.max_item_bytes + 1)
    with caplog.at_level(logging.WARNING):
        assert not await manager.set("api", "big", big)
    assert manager.stats.oversized == 1
    assert "not caching" in caplog.text

    async def loader() -> str:
        return big

    assert await manager.get_or_set("api", "big2", loader) == big
    assert await manager.get("api", "big2", MISSING) is MISSING
    assert manager.stats.oversized == 2


async def test_single_flight_100_concurrent_misses_call_the_loader_once(
    manager: CacheManager,
) -> None:
    calls = 0

    async def loader() -> dict[str, int]:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.05)
        return {"v": 1}

    results = await asyncio.gather(
        *(manager.get_or_set("market", "hot", loader) for _ in range(100))
    )
    assert calls == 1
    assert results == [{"v": 1}] * 100
    assert await manager.get("market", "hot") == {"v": 1}


async def test_loader_errors_propagate_and_are_not_cached(manager: CacheManager) -> None:
    attempts = 0

    async def flaky() -> int:
        nonlocal attempts
        attempts += 1
        if attempts == 1:
            raise ConnectionError("upstream")
        return 5

    with pytest.raises(ConnectionError):
        await manager.get_or_set("market", "f", flaky)
    assert await manager.get_or_set("market", "f", flaky) == 5
    assert manager.stats.loader_errors == 1


async def test_delete(manager: CacheManager) -> None:
    await manager.set("api", "k", 1)
    assert await manager.delete("api", "k")
    assert await manager.get("api", "k") is None
    assert not await manager.delete("api", "k")


class Quotes:
    def __init__(self, cache: CacheManager) -> None:
        self.cache = cache
        self.calls = 0

    @cached("market", ttl=30)
    async def price(self, symbol: str, *, scale: int = 1) -> float:
        self.calls += 1
        return {"BTC": 100.0, "ETH": 10.0}[symbol] * scale

    @cached("analysis", key=lambda symbol: f"pair:{symbol}")
    async def pair(self, symbol: str) -> tuple[str, str]:
        self.calls += 1
        return (symbol, "USDT")


async def test_cached_decorator(manager: CacheManager) -> None:
    quotes = Quotes(manager)
    assert await quotes.price("BTC") == 100.0
    assert await quotes.price("BTC") == 100.0
    assert await quotes.price("ETH") == 10.0
    assert await quotes.price("BTC", scale=2) == 200.0
    assert quotes.calls == 3
    # Same shape on miss and hit: tuples come back as lists both times.
    assert await quotes.pair("SOL") == ["SOL", "USDT"]
    assert await quotes.pair("SOL") == ["SOL", "USDT"]
    assert quotes.calls == 4
    assert await manager.get("analysis", "pair:SOL") == ["SOL", "USDT"]
    assert Quotes.price.__name__ == "price"
