"""Real `market-api` processes on one real Redis: one fleet, each broadcast once per socket.

The measured figures (takeover after the publisher is SIGKILLed, resumption after Redis comes
back) are printed; the assertions are liveness bounds only.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.exceptions import ConnectionClosed

from devstack.process import ManagedProcess, free_port
from devstack.redis import redis_process
from tests.app.alerting.payloads import payload
from tests.app.ws.live import client, subscribe, until

pytestmark = [pytest.mark.redis, pytest.mark.server]

SYMBOL = "BTCUSDT"
TOPICS = ("alerts", f"tickers.{SYMBOL}")


class Replica:
    """One `market-api` process of the fleet."""

    def __init__(self, name: str, redis_port: int, log_dir: Path) -> None:
        port = free_port()
        script = Path(sys.executable).with_name("market-api")
        env = {
            "REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "FLEET_LEASE_TTL": "3",
            "WS_FEED_INTERVAL": "0.25",
            "MARKET_TTL": "1",
            "UPSTREAM_LATENCY_MS": "1",
            "UPSTREAM_JITTER_MS": "0",
            "LOG_LEVEL": "warning",
        }
        self.name = name
        argv = [str(script), "--port", str(port)]
        self.process = ManagedProcess(name, argv, "127.0.0.1", port, log_dir / f"{name}.log", env)
        self.http = f"http://127.0.0.1:{port}"
        self.ws = f"ws://127.0.0.1:{port}/ws/dashboard"

    async def websocket(self) -> dict[str, Any]:
        async with httpx.AsyncClient(base_url=self.http, timeout=10) as http:
            response = await http.get("/api/monitoring/performance/summary")
        response.raise_for_status()
        section: dict[str, Any] = response.json()["websocket"]
        return section

    async def metric(self, name: str, **labels: str) -> float:
        """The value of one series of the replica's own `/metrics` (0 if it has none)."""
        async with httpx.AsyncClient(base_url=self.http, timeout=10) as http:
            text = (await http.get("/metrics")).text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        )

    async def post_alert(self, marker: str) -> None:
        async with httpx.AsyncClient(base_url=self.http, timeout=10) as http:
            response = await http.post("/api/alerts/webhook", json=payload(groupKey=marker))
        assert response.status_code == 200, response.text


class Listener:
    """A dashboard client that records every update it receives, until its socket closes."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self.updates: list[dict[str, Any]] = []
        self._task: asyncio.Task[None] | None = None

    def alerts(self) -> Counter[str]:
        return Counter(u["data"]["groupKey"] for u in self.updates if u["topic"] == "alerts")

    def tickers(self) -> int:
        return sum(1 for u in self.updates if u["topic"] != "alerts")

    async def run(self, stack: AsyncExitStack) -> Listener:
        ws = await stack.enter_async_context(client(self.replica.ws))
        await subscribe(ws, *TOPICS)

        async def read() -> None:
            with contextlib.suppress(ConnectionClosed):
                async for raw in ws:
                    frame = orjson.loads(raw)
                    if "topic" in frame:
                        self.updates.append(frame)

        self._task = asyncio.create_task(read())
        stack.push_async_callback(self._stop)
        return self

    async def _stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture
def replicas(redis_server: ManagedProcess, log_dir: Path) -> Iterator[list[Replica]]:
    fleet = [Replica(name, redis_server.port, log_dir) for name in ("a", "b", "c")]
    try:
        for replica in fleet:
            replica.process.start(ready_timeout=60)
        yield fleet
    finally:
        for replica in fleet:
            replica.process.stop()


@pytest.fixture
async def listeners(replicas: list[Replica]) -> AsyncIterator[list[Listener]]:
    async with AsyncExitStack() as stack:
        yield [await Listener(r).run(stack) for r in replicas for _ in range(2)]


async def _polls_and_upstream_calls(replica: Replica) -> tuple[int, float]:
    """Feed rounds that read the market, and upstream calls made, by this replica so far."""
    polls: int = (await replica.websocket())["feed"]["polls"]
    return polls, await replica.metric("upstream_requests_total")


async def publishers(replicas: list[Replica]) -> list[Replica]:
    found = []
    for replica in replicas:
        if (await replica.websocket())["fleet"]["publisher"]:
            found.append(replica)
    return found


async def test_one_fleet_every_socket_once_one_poller_and_a_takeover(
    replicas: list[Replica], listeners: list[Listener]
) -> None:
    async def one_publisher() -> bool:
        return len(await publishers(replicas)) == 1

    await until(one_publisher, timeout=20)
    state = await replicas[0].websocket()
    fleet = state["fleet"]
    assert fleet["role"] in {"leader", "follower"}
    assert fleet["publisher"] == (fleet["role"] == "leader") == state["feed"]["publisher"]
    assert fleet["connected"] is True
    assert set(fleet) >= {"replica", "reconnects", "published", "received", "dropped", "queued"}

    # The one publisher polls for the topics of every replica: all sockets get tickers.
    async def everyone_has_tickers() -> bool:
        return all(listener.tickers() for listener in listeners)

    await until(everyone_has_tickers, timeout=20)
    before = {r.name: await _polls_and_upstream_calls(r) for r in replicas}
    await asyncio.sleep(2.0)
    after = {r.name: await _polls_and_upstream_calls(r) for r in replicas}
    [publisher] = await publishers(replicas)
    polled = {name for name in before if after[name][0] > before[name][0]}
    called = {name for name in before if after[name][1] > before[name][1]}
    assert polled == called == {publisher.name}, (before, after)
    print(f"\nfeed rounds polled / upstream calls in 2 s: {after} (before: {before})")
    assert [await r.metric("websocket_feed_publisher") for r in replicas] == [
        float(r is publisher) for r in replicas
    ]

    # An alert posted to any replica reaches every socket of the fleet, once.
    for index, replica in enumerate(replicas):
        await replica.post_alert(f"probe-{index}")

    async def everyone_has_the_alerts() -> bool:
        return all(len(listener.alerts()) == len(replicas) for listener in listeners)

    await until(everyone_has_the_alerts, timeout=20)
    await asyncio.sleep(1.0)  # a duplicate would have arrived by now
    expected = {f"probe-{i}": 1 for i in range(len(replicas))}
    assert [dict(listener.alerts()) for listener in listeners] == [expected] * len(listeners)
    summary = (await replicas[0].websocket())["fleet"]
    assert summary["by_family"]["alerts"] == {"published": 1, "received": 2, "dropped": 0}
    for replica in replicas:
        family = {"websocket_topic_family": "alerts"}
        assert await replica.metric("websocket_broker_messages_published_total", **family) == 1
        assert await replica.metric("websocket_broker_messages_received_total", **family) == 2

    # The publisher dies without a word: another replica takes the feed over.
    survivors = [r for r in replicas if r is not publisher]
    polls = {r.name: (await r.websocket())["feed"]["polls"] for r in survivors}
    publisher.process.kill()
    killed = time.monotonic()

    async def taken_over() -> bool:
        for replica in survivors:
            state = await replica.websocket()
            if state["fleet"]["role"] == "leader" and state["feed"]["polls"] > polls[replica.name]:
                return True
        return False

    await until(taken_over, timeout=20, interval=0.05)
    takeover = time.monotonic() - killed
    print(f"\nfeed takeover after SIGKILL of the publisher: {takeover:.2f} s (lease TTL 3 s)")
    assert len(await publishers(survivors)) == 1
    counts = [listener.tickers() for listener in listeners if listener.replica in survivors]

    async def survivors_still_fed() -> bool:
        now = [listener.tickers() for listener in listeners if listener.replica in survivors]
        return all(n > c for n, c in zip(now, counts, strict=True))

    await until(survivors_still_fed, timeout=20)


async def test_redis_down_each_replica_feeds_its_own_then_fan_out_resumes(
    redis_server: ManagedProcess,
    replicas: list[Replica],
    listeners: list[Listener],
    log_dir: Path,
) -> None:
    a, b, _ = replicas

    async def one_publisher() -> bool:
        return len(await publishers(replicas)) == 1

    await until(one_publisher, timeout=20)

    redis_server.kill()
    killed = time.monotonic()

    async def all_alone() -> bool:
        states = [await r.websocket() for r in replicas]
        return all(s["fleet"]["role"] == "alone" and not s["fleet"]["connected"] for s in states)

    await until(all_alone, timeout=20)
    print(f"\nevery replica publishing alone {time.monotonic() - killed:.2f} s after Redis died")
    fed = [listener.tickers() for listener in listeners]
    dropped = {r.name: (await r.websocket())["fleet"]["dropped"] for r in replicas}

    async def each_feeds_its_own() -> bool:
        return all(listener.tickers() > n for listener, n in zip(listeners, fed, strict=True))

    await until(each_feeds_its_own, timeout=20)
    await a.post_alert("during-outage")
    await until(lambda: _has(listeners, a, "during-outage"), timeout=10)
    after = {r.name: (await r.websocket())["fleet"]["dropped"] for r in replicas}
    # The alert could not be relayed; market snapshots of a replica alone are not meant to be.
    assert after["a"] > dropped["a"], (dropped, after)
    print(f"dropped while Redis was down: {after}")

    with redis_process(port=redis_server.port, log_path=log_dir / "redis-again.log"):
        restarted = time.monotonic()
        sent: list[str] = []

        async def delivered_across() -> bool:
            marker = f"after-{len(sent)}"
            sent.append(marker)
            await a.post_alert(marker)
            await asyncio.sleep(0.1)
            on_b = [listener for listener in listeners if listener.replica is b]
            return any(listener.alerts()[m] for listener in on_b for m in sent)

        await until(delivered_across, timeout=30, interval=0.0)
        resumed = time.monotonic() - restarted
        print(f"cross-replica delivery resumed {resumed:.2f} s after Redis restarted")
        await until(one_publisher, timeout=20)

        async def all_connected() -> bool:
            states = [await r.websocket() for r in replicas]
            return all(state["fleet"]["connected"] for state in states)

        # A broadcast sent before a replica has subscribed again is lost to it (at most once).
        await until(all_connected, timeout=20)
        print(f"every replica subscribed again {time.monotonic() - restarted:.2f} s after")
        await a.post_alert("settled")

        async def everyone_settled() -> bool:
            return all(listener.alerts()["settled"] for listener in listeners)

        await until(everyone_settled, timeout=20)
        await asyncio.sleep(1.0)
        for listener in listeners:
            counts = listener.alerts()
            assert counts["settled"] == 1
            assert all(n == 1 for n in counts.values()), counts
            if listener.replica is not a:
                assert counts["during-outage"] == 0  # dropped, never delivered late
        states = [await r.websocket() for r in replicas]
        print(f"reconnects: {[s['fleet']['reconnects'] for s in states]}")


async def _has(listeners: list[Listener], replica: Replica, marker: str) -> bool:
    return all(listener.alerts()[marker] for listener in listeners if listener.replica is replica)
