"""Several WebSocket managers, each with its own broker and Redis client, on one real Redis."""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
from starlette.websockets import WebSocket

from app.ws.config import WebSocketConfig
from app.ws.connection import Connection
from app.ws.election import Role
from app.ws.fleet import Fleet, fleet_redis
from app.ws.manager import WebSocketManager
from app.ws.topics import ALERTS, MOVERS, TopicCatalog
from devstack.process import ManagedProcess, free_port
from devstack.redis import redis_process
from tests.app.ws.live import until

pytestmark = pytest.mark.redis


async def _no_tickers() -> dict[str, Any]:
    return {}


class Replica:
    """A manager in its own fleet membership, with subscribers read straight from their queues."""

    def __init__(self, port: int, *, lease_ttl: float = 3.0) -> None:
        self.manager = WebSocketManager(WebSocketConfig(), TopicCatalog(_no_tickers))
        self.redis = fleet_redis(f"redis://127.0.0.1:{port}/0")
        self.fleet = Fleet(self.redis, self.manager, prefix="test", lease_ttl=lease_ttl)
        self._ids = iter(range(1, 1_000_000))

    def subscriber(self, *topics: str) -> Connection:
        conn = Connection(next(self._ids), cast(WebSocket, object()), 1000, 0.0)
        self.manager.registry.add(conn)
        self.manager.registry.subscribe(conn, topics)
        return conn

    async def start(self) -> Replica:
        await self.fleet.start()
        return self

    async def close(self) -> None:
        await self.fleet.close()
        await self.redis.aclose()


def frames(conn: Connection) -> list[dict[str, Any]]:
    """Everything queued for `conn` so far, taken off its queue."""
    out = []
    while (item := conn.outbox.pop()) is not None:
        out.append(orjson.loads(item.message["text"]))
    return out


@pytest.fixture
async def fleet_of(redis_server: ManagedProcess) -> AsyncIterator[Any]:
    async with AsyncExitStack() as stack:

        async def make(n: int, **kwargs: Any) -> list[Replica]:
            replicas = [await Replica(redis_server.port, **kwargs).start() for _ in range(n)]
            for replica in replicas:
                stack.push_async_callback(replica.close)
            await until(lambda: _all_connected(replicas))
            return replicas

        yield make


async def _all_connected(replicas: list[Replica]) -> bool:
    return all(r.manager.stats.broker_connected for r in replicas)


async def test_a_broadcast_from_any_replica_reaches_every_subscriber_once(fleet_of: Any) -> None:
    replicas: list[Replica] = await fleet_of(3)
    subscribers = [r.subscriber(ALERTS) for r in replicas for _ in range(2)]
    bystanders = [r.subscriber(MOVERS) for r in replicas]
    sent = 0
    for round_ in range(4):
        for index, replica in enumerate(replicas):
            assert replica.manager.broadcast(ALERTS, {"id": f"{round_}-{index}"}) == 2
            sent += 1

    received: list[Counter[str]] = [Counter() for _ in subscribers]

    async def everything_arrived() -> bool:
        for conn, seen in zip(subscribers, received, strict=True):
            seen.update(f["data"]["id"] for f in frames(conn))
        return all(sum(seen.values()) >= sent for seen in received)

    await until(everything_arrived)
    await asyncio.sleep(0.3)  # anything duplicated would have arrived by now
    await everything_arrived()
    expected = {f"{r}-{i}": 1 for r in range(4) for i in range(3)}
    for seen in received:
        assert dict(seen) == expected
    assert all(frames(conn) == [] for conn in bystanders)
    for replica in replicas:
        stats = replica.manager.stats
        assert stats.broker_published[ALERTS] == 4
        assert stats.broker_received[ALERTS] == 8  # the other two replicas' broadcasts
        assert sum(stats.broker_dropped.values()) == 0


async def test_exactly_one_replica_is_elected_and_a_dead_one_is_replaced(
    fleet_of: Any,
) -> None:
    replicas: list[Replica] = await fleet_of(3)
    await until(lambda: _one_leader(replicas))
    leader = next(r for r in replicas if r.fleet.election.role is Role.LEADER)
    assert sum(r.manager.stats.feed_publisher for r in replicas) == 1

    # A dead replica renews nothing and releases nothing: stop its loop without a goodbye.
    task = leader.fleet.election._task
    assert task is not None
    task.cancel()
    await asyncio.wait([task])
    survivors = [r for r in replicas if r is not leader]
    await until(lambda: _one_leader(survivors), timeout=10)

    # A clean stop hands the lease over without waiting for it to expire.
    successor = next(r for r in survivors if r.fleet.election.role is Role.LEADER)
    await successor.fleet.election.close()
    last = next(r for r in survivors if r is not successor)
    await until(lambda: _one_leader([last]), timeout=5)


async def _one_leader(replicas: list[Replica]) -> bool:
    return [r.fleet.election.role for r in replicas].count(Role.LEADER) == 1 and all(
        r.fleet.election.role is not Role.ALONE for r in replicas
    )


async def test_every_replica_advertises_its_topics_to_the_publisher(fleet_of: Any) -> None:
    replicas: list[Replica] = await fleet_of(3)
    a, b, c = replicas
    b.subscriber("tickers.BTCUSDT")
    c.subscriber(MOVERS, "tickers.ETHUSDT")

    async def advertised() -> bool:
        for replica in (b, c):
            await replica.fleet.election.step()
        seen = await a.fleet.election.topics_by_replica()
        return seen == {
            a.fleet.replica_id: frozenset(),
            b.fleet.replica_id: frozenset({"tickers.BTCUSDT"}),
            c.fleet.replica_id: frozenset({MOVERS, "tickers.ETHUSDT"}),
        }

    await until(advertised)
    await c.fleet.close()  # withdraws its topics
    seen = await a.fleet.election.topics_by_replica()
    assert c.fleet.replica_id not in seen


async def test_redis_down_keeps_local_delivery_counts_drops_and_resumes_by_itself(
    redis_server: ManagedProcess, tmp_path: Path
) -> None:
    a, b = Replica(redis_server.port), Replica(redis_server.port)
    try:
        await a.start()
        await b.start()
        await until(lambda: _all_connected([a, b]))
        local, remote = a.subscriber(ALERTS), b.subscriber(ALERTS)

        redis_server.kill()
        await until(lambda: _none_connected([a, b]))
        for i in range(5):
            a.manager.broadcast(ALERTS, {"id": f"down-{i}"})
        await until(lambda: _dropped(a, 5))
        assert [f["data"]["id"] for f in frames(local)] == [f"down-{i}" for i in range(5)]
        await until(lambda: _roles_are(Role.ALONE, [a, b]))  # each feed publishes for itself

        with redis_process(port=redis_server.port, log_path=tmp_path / "redis2.log"):
            await until(lambda: _all_connected([a, b]), timeout=15)
            assert a.manager.stats.broker_reconnects == 1
            await until(lambda: _one_leader([a, b]), timeout=10)

            async def resumed() -> bool:
                a.manager.broadcast(ALERTS, {"id": "back"})
                await asyncio.sleep(0.1)
                return any(f["data"]["id"] == "back" for f in frames(remote))

            await until(resumed, timeout=10)
            assert a.manager.stats.broker_published[ALERTS] >= 1
    finally:
        await a.close()
        await b.close()


async def _none_connected(replicas: list[Replica]) -> bool:
    return not any(r.manager.stats.broker_connected for r in replicas)


async def _dropped(replica: Replica, n: int) -> bool:
    return replica.manager.stats.broker_dropped[ALERTS] >= n


async def _roles_are(role: Role, replicas: list[Replica]) -> bool:
    for replica in replicas:
        await replica.fleet.election.step()
    return all(r.fleet.election.role is role for r in replicas)


async def test_the_publish_path_stays_bounded_while_redis_hangs(
    redis_server: ManagedProcess,
) -> None:
    replica = await Replica(redis_server.port).start()
    pid = redis_server.proc.pid if redis_server.proc else None
    assert pid is not None
    try:
        await until(lambda: _all_connected([replica]))
        broker = replica.fleet.broker
        os.kill(pid, signal.SIGSTOP)  # Redis accepts nothing and answers nothing
        try:
            replica.manager.broadcast(ALERTS, {"id": "first"})
            await asyncio.sleep(0.05)  # the sender is now stuck on that one
            for i in range(broker.queue_size + 500):
                replica.manager.broadcast(ALERTS, {"id": i})
            assert broker.queued == broker.queue_size
            assert replica.manager.stats.broker_dropped[ALERTS] == 500
            # The stuck send times out: it and everything queued behind it are dropped.
            await until(lambda: _dropped(replica, broker.queue_size + 501), timeout=15)
            assert broker.queued == 0
        finally:
            os.kill(pid, signal.SIGCONT)
        assert broker.running
        assert replica.fleet.election.running
    finally:
        await replica.close()


async def test_a_replica_starts_alone_when_redis_is_not_there() -> None:
    replica = await Replica(free_port()).start()  # nothing listens there
    try:
        assert replica.fleet.election.role is Role.ALONE
        assert replica.manager.stats.feed_publisher
        conn = replica.subscriber(ALERTS)
        assert replica.manager.broadcast(ALERTS, {"id": "local"}) == 1
        assert [f["data"]["id"] for f in frames(conn)] == ["local"]
        await until(lambda: _dropped(replica, 1))
        assert not replica.manager.stats.broker_connected
        assert replica.fleet.broker.running
    finally:
        await replica.close()
