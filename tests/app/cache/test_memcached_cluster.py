"""Two real memcached nodes behind one backend: placement, one node dying, and coming back."""

from __future__ import annotations

import asyncio
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
from pymemcache.client.hash import HashClient

from app.cache import BreakerState, CacheManager, CircuitBreaker, MemcachedBackend, MemoryBackend
from app.cache.backends.base import PoolUsage, ServerHealth
from app.cache.keys import data_key
from devstack.process import ManagedProcess
from tests.support.loop_lag import LoopLagProbe
from tests.support.memcached_pair import direct, memcached_nodes, node_stat, stat_of

pytestmark = pytest.mark.memcached

DEAD_TIMEOUT = 1.0
POOL_MAX = 8
KEYS = [f"k{i}" for i in range(40)]


@pytest.fixture
def nodes() -> Iterator[list[ManagedProcess]]:
    with memcached_nodes(2) as pair:
        yield pair


def backend_for(nodes: list[ManagedProcess], pool_min: int = 2) -> MemcachedBackend:
    return MemcachedBackend(
        [n.address for n in nodes],
        pool_min=pool_min,
        pool_max=POOL_MAX,
        connect_timeout=0.05,
        timeout=0.05,
        dead_timeout=DEAD_TIMEOUT,
    )


@pytest.fixture
async def cluster(nodes: list[ManagedProcess]) -> AsyncIterator[CacheManager]:
    """A manager over both nodes; no near-cache, so every read asks memcached."""
    manager = CacheManager(
        memory=MemoryBackend(max_entries=1000, max_bytes=8 << 20),
        shared=backend_for(nodes),
        # Three consecutive failures would open it: losing one node of two must not.
        breaker=CircuitBreaker(failure_threshold=3, cooldown=5.0),
        default_ttl=60,
        key_prefix="test",
    )
    await manager.start()
    try:
        yield manager
    finally:
        await manager.close()


def ring_of(manager: CacheManager) -> MemcachedBackend:
    assert isinstance(manager.shared, MemcachedBackend)
    return manager.shared


def full_key(manager: CacheManager, key: str) -> str:
    return data_key(manager.key_prefix, "api", manager._versions["api"][0], key)


async def warm(manager: CacheManager) -> dict[str, str]:
    """Store every key; answer the node each one was placed on."""
    for key in KEYS:
        await manager.set("api", key, {"key": key, "source": "loader"})
    backend = ring_of(manager)
    return {key: backend.ring.node_for(full_key(manager, key)) for key in KEYS}


async def held_by(node: ManagedProcess, keys: list[str]) -> set[str]:
    def read() -> set[str]:
        client = direct(node)
        try:
            return set(client.get_many(keys))
        finally:
            client.close()

    return await asyncio.to_thread(read)


async def test_start_warms_every_node_and_ping_reports_each(nodes: list[ManagedProcess]) -> None:
    """Regression: start-up used to die on `HashClient.version` with two servers."""
    watchers = [direct(n) for n in nodes]
    before = [node_stat(w, "curr_connections") for w in watchers]
    backend = backend_for(nodes, pool_min=3)
    await backend.start()
    try:
        assert backend.pool_usage() == PoolUsage(idle=6, used=0)
        after = [node_stat(w, "curr_connections") for w in watchers]
        assert [a - b for a, b in zip(after, before, strict=True)] == [3, 3]
        assert await backend.ping() is True
        assert backend.server_health == {
            n.address: ServerHealth(reachable=True, in_ring=True) for n in nodes
        }
        nodes[1].kill()
        assert await backend.ping() is False
        assert backend.server_health[nodes[0].address] == ServerHealth(True, True)
        assert backend.server_health[nodes[1].address].reachable is False
    finally:
        await backend.close()
        for w in watchers:
            w.close()


async def test_keys_spread_over_both_nodes_as_hash_client_places_them(
    cluster: CacheManager, nodes: list[ManagedProcess]
) -> None:
    placed = await warm(cluster)
    servers = [n.address for n in nodes]
    hash_client = HashClient([(n.host, n.port) for n in nodes])
    for node in nodes:
        mine = [full_key(cluster, k) for k in KEYS if placed[k] == node.address]
        assert 5 < len(mine) < len(KEYS) - 5, placed  # both nodes hold a fair share
        others = [full_key(cluster, k) for k in KEYS if placed[k] != node.address]
        assert await held_by(node, mine) == set(mine)
        assert await held_by(node, others) == set()
        assert all(hash_client.hasher.get_node(k) == node.address for k in mine)
        assert stat_of(node, "curr_items") >= len(mine)
    assert set(placed.values()) == set(servers)
    health = await cluster.health()
    assert health["memcached"]["nodes"] == {
        s: {"reachable": True, "in_ring": True} for s in servers
    }


async def _load(
    manager: CacheManager,
    stop: asyncio.Event,
    served: list[tuple[float, str, str]],
    errors: list[BaseException],
) -> None:
    """get_or_set over every key, as routes do; records (time, key, tier that answered)."""

    def loader_for(key: str) -> Callable[[], Awaitable[dict[str, str]]]:
        async def load() -> dict[str, str]:
            return {"key": key, "source": "loader"}

        return load

    i = 0
    while not stop.is_set():
        key = KEYS[i % len(KEYS)]
        try:
            entry = await manager.get_or_set_entry("api", key, loader_for(key))
        except Exception as exc:
            errors.append(exc)
        else:
            served.append((time.monotonic(), key, entry.tier))
        i += 7
        await asyncio.sleep(0)


async def test_one_node_killed_under_load_its_keys_move_and_the_other_keeps_serving(
    cluster: CacheManager, nodes: list[ManagedProcess]
) -> None:
    placed = await warm(cluster)
    survivor, victim = nodes
    backend = ring_of(cluster)
    victim_keys = [k for k in KEYS if placed[k] == victim.address]
    survivor_keys = [k for k in KEYS if placed[k] == survivor.address]

    served: list[tuple[float, str, str]] = []
    errors: list[BaseException] = []
    stop = asyncio.Event()
    async with LoopLagProbe() as lag:
        workers = [asyncio.create_task(_load(cluster, stop, served, errors)) for _ in range(16)]
        await asyncio.sleep(0.3)
        killed_at = time.monotonic()
        victim.kill()
        moved_at = None
        deadline = killed_at + DEAD_TIMEOUT + 3.0
        wanted = {full_key(cluster, k) for k in victim_keys}
        while time.monotonic() < deadline:
            if await held_by(survivor, list(wanted)) == wanted:
                moved_at = time.monotonic()
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.5)  # keep loading with the node gone
        stop.set()
        await asyncio.gather(*workers)
    threads = [t for t in threading.enumerate() if t.name.startswith("memcached")]

    ejected_after = backend.ring.nodes[victim.address].ejected_at - killed_at
    assert moved_at is not None, "the dead node's keys never reached the survivor"
    print(
        f"\nkill one of two nodes: {len(served)} reads, {len(errors)} errors, ejected after "
        f"{ejected_after * 1000:.0f} ms, its keys all on the survivor after "
        f"{(moved_at - killed_at) * 1000:.0f} ms, max loop lag {lag.max_lag * 1000:.1f} ms"
    )
    assert errors == []
    assert backend.ring.members == [survivor.address]
    assert 0 <= ejected_after < DEAD_TIMEOUT
    # The survivor's own keys never left memcached: no fallback, no reload.
    after_kill = [(t, k, tier) for t, k, tier in served if t > killed_at]
    assert {tier for _, k, tier in after_kill if k in survivor_keys} == {"memcached"}
    # The victim's keys are answered from memcached again (the survivor) once they moved.
    late = [tier for t, k, tier in after_kill if k in victim_keys and t > moved_at + 0.1]
    assert late
    assert set(late) == {"memcached"}
    assert cluster.breaker.opened_count == 0
    assert cluster.breaker.state is BreakerState.CLOSED
    assert len(threads) <= 2 * POOL_MAX
    assert lag.max_lag < 0.5  # liveness only: no memcached call ever runs on the loop
    health = await cluster.health()
    assert health["status"] == "degraded"
    assert health["memcached"]["nodes"][victim.address] == {"reachable": False, "in_ring": False}
    assert health["memcached"]["nodes"][survivor.address] == {"reachable": True, "in_ring": True}


async def test_a_restarted_node_rejoins_empty_and_serves_its_keys_again(
    cluster: CacheManager, nodes: list[ManagedProcess]
) -> None:
    placed = await warm(cluster)
    survivor, victim = nodes
    backend = ring_of(cluster)
    victim_key = next(k for k in KEYS if placed[k] == victim.address)
    victim.kill()
    while backend.ring.members != [survivor.address]:
        assert await cluster.get("api", victim_key, "fallback") is not None
    ejected_at = backend.ring.nodes[victim.address].ejected_at
    await cluster.set("api", victim_key, {"written": "while the node was away"})
    assert await held_by(survivor, [full_key(cluster, victim_key)])

    # Down past the first probe, which fails and schedules the next one.
    await asyncio.sleep(max(0.0, ejected_at + DEAD_TIMEOUT + 0.2 - time.monotonic()))
    assert victim.address not in backend.ring.members
    restarted_at = time.monotonic()
    await asyncio.to_thread(victim.start)  # same port
    deadline = restarted_at + DEAD_TIMEOUT + 3.0
    while victim.address not in backend.ring.members and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    back_at = time.monotonic()
    print(
        f"\nrestart: back in the ring {(back_at - restarted_at) * 1000:.0f} ms after the "
        f"restart, {(back_at - ejected_at) * 1000:.0f} ms after leaving it"
    )
    assert set(backend.ring.members) == {n.address for n in nodes}
    # Its keys are placed on it again: a write lands there, a read is answered by it.
    await cluster.set("api", victim_key, {"written": "after the restart"})
    key = full_key(cluster, victim_key)
    assert await held_by(victim, [key]) == {key}
    client = direct(victim)
    client.set(key, b'{"written":"straight into the node"}', noreply=False)
    client.close()
    assert await cluster.get("api", victim_key) == {"written": "straight into the node"}
    assert cluster.breaker.opened_count == 0


async def test_a_node_back_from_a_stall_is_emptied_before_it_rejoins(
    cluster: CacheManager, nodes: list[ManagedProcess]
) -> None:
    """While a node is out, its keys are written elsewhere: what it still holds may be older."""
    placed = await warm(cluster)
    survivor, victim = nodes
    backend = ring_of(cluster)
    victim_key = next(k for k in KEYS if placed[k] == victim.address)
    assert victim.proc is not None
    victim.proc.send_signal(signal.SIGSTOP)  # SIGSTOP: the node holds its data but stops answering
    try:
        while backend.ring.members != [survivor.address]:
            await cluster.get("api", victim_key)
        await cluster.set("api", victim_key, {"written": "while the node was stalled"})
    finally:
        victim.proc.send_signal(signal.SIGCONT)  # SIGCONT
    deadline = time.monotonic() + DEAD_TIMEOUT + 3.0
    while victim.address not in backend.ring.members and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert victim.address in backend.ring.members
    # Without the flush the node would answer the value from before the stall.
    assert await cluster.get("api", victim_key) is None


async def test_every_node_down_opens_the_breaker_and_one_back_closes_it(
    cluster: CacheManager, nodes: list[ManagedProcess]
) -> None:
    """The last node never leaves the ring: with all of them gone, the breaker takes over."""
    placed = await warm(cluster)
    backend = ring_of(cluster)
    for node in nodes:
        node.kill()
    for key in KEYS * 2:  # every read still answers, from memory or as a miss
        await cluster.get("api", key)
    assert len(backend.ring.members) == 1
    assert cluster.breaker.state is not BreakerState.CLOSED
    assert cluster.stats.fallbacks["breaker_open"] > 0

    left_in_ring = backend.ring.members[0]
    back = next(n for n in nodes if n.address != left_in_ring)  # the one that left the ring
    await asyncio.to_thread(back.start)
    deadline = time.monotonic() + DEAD_TIMEOUT + 3.0
    while back.address not in backend.ring.members and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.02)
    assert back.address in backend.ring.members
    # The breaker's next probe finds a node that answers (the dead one leaves the ring then).
    cluster.breaker.cooldown = 0.0
    key = next(k for k in KEYS if placed[k] == back.address)
    deadline = time.monotonic() + 3.0
    while cluster.breaker.state is not BreakerState.CLOSED and time.monotonic() < deadline:
        await cluster.set("api", key, {"back": True})
        await asyncio.sleep(0.02)
    assert cluster.breaker.state is BreakerState.CLOSED
    assert await cluster.get("api", key) == {"back": True}
    assert await held_by(back, [full_key(cluster, key)])
