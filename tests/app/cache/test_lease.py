"""Cross-replica single-flight: several managers (one per replica) over one real memcached."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import pytest
from pymemcache.client.base import Client

from app.cache import CacheManager, CircuitBreaker
from app.cache.factory import build_cache_manager, build_lease_policy
from app.cache.keys import data_key, lease_key
from app.cache.lease import LeasePolicy
from app.settings import Settings
from devstack.process import ManagedProcess
from tests.app.cache.conftest import build_manager

pytestmark = pytest.mark.memcached

REPLICAS = 3
CALLERS = 100
SLACK = 5.0
"""Seconds added to every bound: the machine is shared and slow at times."""


async def replicas(
    stack: AsyncExitStack, memcached: ManagedProcess, policy: LeasePolicy, n: int = REPLICAS
) -> list[CacheManager]:
    managers = []
    for _ in range(n):
        manager = build_manager([memcached.address], lease=policy, version_refresh=0.5)
        await manager.start()
        stack.push_async_callback(manager.close)
        managers.append(manager)
    return managers


class Upstream:
    """A loader that counts its calls and takes a while, as an exchange would."""

    def __init__(self, delay: float = 0.2, value: Any = None) -> None:
        self.calls = 0
        self.delay = delay
        self.value = value if value is not None else {"price": 42}

    async def __call__(self) -> Any:
        self.calls += 1
        await asyncio.sleep(self.delay)
        return self.value


class Hung:
    """A loader that starts and does not finish until the test ends: a replica stuck or killed
    mid-load, as far as the others can tell."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.ended = asyncio.Event()

    async def __call__(self) -> Any:
        self.started.set()
        await self.ended.wait()
        return "late"

    async def end(self, held: asyncio.Task[Any]) -> None:
        self.ended.set()
        await held


@pytest.fixture
async def stack() -> AsyncIterator[AsyncExitStack]:
    async with AsyncExitStack() as s:
        yield s


async def timed(call: Awaitable[Any]) -> tuple[Any, float]:
    started = time.monotonic()
    value = await call
    return value, time.monotonic() - started


def leases(managers: list[CacheManager]) -> dict[str, int]:
    total: dict[str, int] = {}
    for manager in managers:
        for outcome, n in manager.stats.leases.items():
            total[outcome] = total.get(outcome, 0) + n
    return total


async def test_many_replicas_missing_one_key_load_it_once(
    stack: AsyncExitStack, memcached: ManagedProcess
) -> None:
    managers = await replicas(stack, memcached, LeasePolicy(ttl=10, wait=10.0))
    upstream = Upstream()
    calls = [m.get_or_set("market", "tickers", upstream) for m in managers for _ in range(CALLERS)]
    values = await asyncio.gather(*calls)
    assert upstream.calls == 1
    assert values == [{"price": 42}] * (REPLICAS * CALLERS)
    assert leases(managers) == {"acquired": 1, "waited_hit": REPLICAS - 1}
    # The holder let go of the lease once the value was stored.
    stored = data_key("test", "market", managers[0]._versions["market"][0], "tickers")
    raw = Client(("127.0.0.1", memcached.port))
    try:
        assert raw.get(stored) == b'{"price":42}'
        assert raw.get(lease_key("test", stored)) is None
    finally:
        raw.close()


async def test_entries_are_served_as_stored_bytes_to_waiters(
    stack: AsyncExitStack, memcached: ManagedProcess
) -> None:
    managers = await replicas(stack, memcached, LeasePolicy(ttl=10, wait=10.0))
    upstream = Upstream(value={"movers": [1, 2, 3]})
    entries = await asyncio.gather(
        *(m.get_or_set_entry("api", "movers:10", upstream) for m in managers)
    )
    assert upstream.calls == 1
    assert {e.payload for e in entries} == {b'{"movers":[1,2,3]}'}
    assert {e.tier for e in entries} == {"memcached"}


async def test_a_dead_holder_stalls_nobody_past_the_wait_bound(
    stack: AsyncExitStack, memcached: ManagedProcess
) -> None:
    wait = 1.0
    holder, *waiters = await replicas(stack, memcached, LeasePolicy(ttl=60, wait=wait))
    hung = Hung()
    held = asyncio.create_task(holder.get_or_set("market", "tickers", hung))
    stack.push_async_callback(hung.end, held)
    await asyncio.wait_for(hung.started.wait(), SLACK)  # it holds the lease and never fills
    loaders = [Upstream(delay=0.01) for _ in waiters]
    answers = await asyncio.gather(
        *(
            timed(w.get_or_set("market", "tickers", up))
            for w, up in zip(waiters, loaders, strict=True)
            for _ in range(CALLERS // 2)
        )
    )
    latencies = [seconds for _, seconds in answers]
    assert all(value == {"price": 42} for value, _ in answers)
    assert min(latencies) >= wait * 0.9, "a waiter loaded before the bound"
    assert max(latencies) <= wait + SLACK
    assert [up.calls for up in loaders] == [1] * len(waiters)  # one load per replica after it
    assert leases(waiters) == {"waited_loaded": len(waiters)}
    assert not held.done()


async def test_a_failed_holder_lets_go_and_a_waiter_takes_over_at_once(
    stack: AsyncExitStack, memcached: ManagedProcess
) -> None:
    wait = 30.0
    holder, waiter = await replicas(stack, memcached, LeasePolicy(ttl=60, wait=wait), n=2)
    started, fail = asyncio.Event(), asyncio.Event()

    async def failing() -> Any:
        started.set()
        await fail.wait()
        raise RuntimeError("exchange said no")

    held = asyncio.create_task(holder.get_or_set("market", "tickers", failing))
    await asyncio.wait_for(started.wait(), SLACK)
    upstream = Upstream(delay=0.01)
    waiting = asyncio.create_task(timed(waiter.get_or_set("market", "tickers", upstream)))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    fail.set()
    with pytest.raises(RuntimeError, match="exchange said no"):
        await held
    value, seconds = await waiting
    assert value == {"price": 42}
    assert seconds < wait / 2  # taken over when the lease went, not at the bound
    assert upstream.calls == 1
    assert dict(waiter.stats.leases) == {"acquired": 1}


async def test_a_load_after_the_bound_does_not_wait_again_for_what_it_needs(
    stack: AsyncExitStack, memcached: ManagedProcess
) -> None:
    """An aggregate built from a snapshot: the gone holder leased both; one bound, not two."""
    wait = 3.0
    holder, waiter = await replicas(stack, memcached, LeasePolicy(ttl=60, wait=wait), n=2)
    hung = Hung()

    def aggregate(manager: CacheManager, snapshot: Callable[[], Awaitable[Any]]) -> Any:
        async def load() -> Any:
            return {"n": len(await manager.get_or_set("market", "tickers", snapshot))}

        return load

    held = asyncio.create_task(holder.get_or_set("dashboard", "overview", aggregate(holder, hung)))
    stack.push_async_callback(hung.end, held)
    await asyncio.wait_for(hung.started.wait(), SLACK)
    upstream = Upstream(delay=0.01)
    value, seconds = await timed(
        waiter.get_or_set("dashboard", "overview", aggregate(waiter, upstream))
    )
    assert value == {"n": 1}
    assert wait * 0.9 <= seconds < 2 * wait - 0.5
    assert upstream.calls == 1
    assert dict(waiter.stats.leases) == {"waited_loaded": 2}


async def test_a_store_that_fails_lease_calls_never_fails_the_request(
    memcached: ManagedProcess,
) -> None:
    manager = build_manager(
        [memcached.address], lease=LeasePolicy(ttl=5, wait=5.0), breaker=CircuitBreaker(5, 5.0)
    )
    await manager.start()
    try:
        memcached.stop()
        upstream = Upstream(delay=0.0)
        assert await manager.get_or_set("market", "tickers", upstream) == {"price": 42}
        assert upstream.calls == 1
        assert dict(manager.stats.leases) == {"unavailable": 1}
    finally:
        await manager.close()


async def test_with_the_breaker_open_misses_load_as_before(memcached: ManagedProcess) -> None:
    manager = build_manager(
        [memcached.address], lease=LeasePolicy(ttl=5, wait=5.0), breaker=CircuitBreaker(1, 60.0)
    )
    await manager.start()
    try:
        manager.breaker.record_failure()
        upstream = Upstream(delay=0.0)
        assert await manager.get_or_set("market", "tickers", upstream) == {"price": 42}
        assert upstream.calls == 1
        assert not manager.stats.leases
        assert set(manager.stats.fallbacks) == {"breaker_open"}
    finally:
        await manager.close()


async def test_forced_misses_still_reach_the_loader_on_every_replica(
    stack: AsyncExitStack, memcached: ManagedProcess
) -> None:
    managers = await replicas(stack, memcached, LeasePolicy(ttl=10, wait=10.0), n=2)
    for manager in managers:
        manager.force_miss = True
    upstream = Upstream(delay=0.05)
    await asyncio.gather(*(m.get_or_set("market", "tickers", upstream) for m in managers))
    assert upstream.calls == 2
    assert leases(managers) == {}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, LeasePolicy(ttl=3, wait=2.5)),
        ({"upstream_timeout": 4.0, "cache_lease_ttl": 6}, LeasePolicy(ttl=6, wait=4.5)),
        ({"cache_lease_wait": 1.25}, LeasePolicy(ttl=3, wait=1.25)),
        ({"cache_lease_wait": 0}, None),
    ],
)
def test_the_wait_bound_is_sized_from_the_upstream_timeout(
    overrides: dict[str, Any], expected: LeasePolicy | None
) -> None:
    assert build_lease_policy(Settings(**overrides)) == expected


def test_memory_only_has_no_lease() -> None:
    assert build_cache_manager(Settings()).lease is None
    shared = build_cache_manager(Settings(memcached_servers=["127.0.0.1:1"]))
    assert shared.lease is not None


def test_pauses_grow_with_jitter_and_stay_bounded() -> None:
    policy = LeasePolicy(ttl=1, wait=1.0, first_pause=0.01, max_pause=0.08)
    pauses = [p for p, _ in zip(policy.pauses(random.Random(3)), range(12), strict=False)]
    assert all(0.005 <= p <= 0.08 for p in pauses)
    assert pauses[0] <= 0.01 < pauses[4]
    assert len(set(pauses)) == len(pauses)  # jittered: replicas do not poll in step
