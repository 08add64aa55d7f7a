from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, cast

import orjson
import pytest
from starlette.websockets import WebSocket

from app.upstream.client import UpstreamUnavailable
from app.ws.connection import Connection
from app.ws.election import Role
from app.ws.feed import MOVERS_LIMIT, MarketFeed
from app.ws.registry import Registry
from app.ws.stats import WebSocketStats
from tests.app.ws.live import until


class FakeMarket:
    """Sixty symbols; counts reads; fails while `failing` is set."""

    def __init__(self) -> None:
        self.rows = {f"S{i:02d}USDT": {"symbol": f"S{i:02d}USDT", "price": 1.0} for i in range(60)}
        self.reads: list[str] = []
        self.failing = False

    def _read(self, what: str) -> None:
        self.reads.append(what)
        if self.failing:
            raise UpstreamUnavailable("/tickers", "down (test)")

    async def ticker_map(self) -> Mapping[str, Mapping[str, Any]]:
        self._read("tickers")
        return {k: dict(v) for k, v in self.rows.items()}

    async def movers(self, limit: int) -> Mapping[str, Any]:
        self._read(f"movers:{limit}")
        return {"limit": limit, "top": self.rows["S00USDT"]["price"]}

    async def overview(self) -> Mapping[str, Any]:
        self._read("overview")
        return {"symbols": len(self.rows)}


def setup(*topics: str) -> tuple[Registry, Connection, FakeMarket]:
    registry = Registry(
        WebSocketStats(), slow_consumer_timeout=10, close_timeout=1, clock=lambda: 0.0
    )
    conn = Connection(1, cast(WebSocket, object()), 1000, 0.0)
    registry.add(conn)
    registry.subscribe(conn, topics)
    return registry, conn, FakeMarket()


def received(conn: Connection) -> list[str]:
    topics = []
    while (item := conn.outbox.pop()) is not None:
        topics.append(orjson.loads(item.message["text"])["topic"])
    return topics


async def test_publishes_only_subscribed_topics_and_only_changes() -> None:
    registry, conn, market = setup("tickers.S01USDT", "tickers.S02USDT", "market.movers")
    feed = MarketFeed(registry, market, interval=1.0)
    assert await feed.tick() == 3
    assert sorted(received(conn)) == ["market.movers", "tickers.S01USDT", "tickers.S02USDT"]
    assert market.reads == ["tickers", f"movers:{MOVERS_LIMIT}"]  # one snapshot for all tickers

    assert await feed.tick() == 0  # nothing changed: nothing sent
    assert received(conn) == []
    market.rows["S02USDT"]["price"] = 2.0
    market.rows["S00USDT"]["price"] = 3.0
    assert await feed.tick() == 2
    assert sorted(received(conn)) == ["market.movers", "tickers.S02USDT"]


async def test_reads_nothing_without_subscribers() -> None:
    registry, conn, market = setup()
    feed = MarketFeed(registry, market, interval=1.0)
    assert await feed.tick() == 0
    registry.subscribe(conn, ["alerts"])
    assert await feed.tick() == 0
    assert market.reads == []


async def test_a_topic_watched_again_is_published_again_even_if_unchanged() -> None:
    registry, conn, market = setup("market.overview")
    feed = MarketFeed(registry, market, interval=1.0)
    assert await feed.tick() == 1
    assert received(conn) == ["market.overview"]
    registry.unsubscribe(conn, ["market.overview"])
    registry.subscribe(conn, ["market.overview"])
    assert await feed.tick() == 1
    assert received(conn) == ["market.overview"]


async def test_upstream_errors_do_not_end_the_feed(caplog: pytest.LogCaptureFixture) -> None:
    registry, conn, market = setup("tickers.S01USDT")
    market.failing = True
    feed = MarketFeed(registry, market, interval=0.01)
    caplog.set_level(logging.WARNING, "app.ws.feed")
    feed.start()
    try:

        async def failed_thrice() -> bool:
            return registry.stats.feed_errors >= 3

        await until(failed_thrice)
        assert feed.running
        assert received(conn) == []
        market.failing = False

        async def published() -> bool:
            return bool(received(conn))

        await until(published)
    finally:
        await feed.stop()
    assert not feed.running
    assert registry.stats.feed_ticks > registry.stats.feed_errors >= 3
    failures = [r for r in caplog.records if "feed tick failed" in r.getMessage()]
    assert len(failures) == 1  # rate-limited: once per minute, however many ticks failed


async def test_interval_must_be_positive() -> None:
    registry, _, market = setup()
    with pytest.raises(ValueError, match="interval"):
        MarketFeed(registry, market, interval=0)


class Fleet:
    """What `app.ws.election.FeedElection` tells the feed, set by the test."""

    def __init__(self, local: Registry) -> None:
        self.local = local
        self.role = Role.LEADER
        self.others: dict[str, frozenset[str]] = {}

    async def topics_by_replica(self) -> Mapping[str, frozenset[str]]:
        return {"self": frozenset(self.local.active_topics()), **self.others}


async def test_a_follower_reads_nothing_and_sends_nothing() -> None:
    registry, conn, market = setup("tickers.S01USDT", "market.movers")
    fleet = Fleet(registry)
    fleet.role = Role.FOLLOWER
    feed = MarketFeed(registry, market, interval=1.0, fleet=fleet)
    assert await feed.tick() == 0
    assert market.reads == []
    assert received(conn) == []
    assert registry.stats.feed_polls == 0


async def test_the_publisher_sends_topics_subscribed_on_other_replicas() -> None:
    registry, conn, market = setup("tickers.S01USDT")
    fleet = Fleet(registry)
    fleet.others = {"b": frozenset({"tickers.S02USDT", "market.overview"})}
    sent: list[str] = []
    delivered: list[str] = []
    registry_broadcast = registry.broadcast

    def broadcast(topic: str, data: Any) -> int:  # what the manager relays to the fleet
        sent.append(topic)
        return registry_broadcast(topic, data)

    def deliver(topic: str, data: Any) -> int:
        delivered.append(topic)
        return registry_broadcast(topic, data)

    registry.broadcast = broadcast  # type: ignore[method-assign]
    registry.deliver = deliver  # type: ignore[method-assign]
    feed = MarketFeed(registry, market, interval=1.0, fleet=fleet)
    assert await feed.tick() == 3
    assert sorted(sent) == ["market.overview", "tickers.S01USDT", "tickers.S02USDT"]
    assert received(conn) == ["tickers.S01USDT"]  # the others go to replica b only
    assert market.reads == ["tickers", "overview"]  # one read per round for the whole fleet
    assert registry.stats.feed_polls == 1

    sent.clear()
    assert await feed.tick() == 0  # unchanged: skipped, whoever subscribes to it
    # A replica that starts watching a topic gets its snapshot at once, changed or not.
    fleet.others["c"] = frozenset({"tickers.S02USDT"})
    assert await feed.tick() == 1
    assert sent == ["tickers.S02USDT"]

    # Losing the lease forgets what was sent: taking over again sends every snapshot once.
    fleet.role = Role.FOLLOWER
    assert await feed.tick() == 0
    fleet.role = Role.LEADER
    sent.clear()
    assert await feed.tick() == 3
    assert sorted(sent) == ["market.overview", "tickers.S01USDT", "tickers.S02USDT"]
    assert received(conn) == ["tickers.S01USDT"]

    # Alone (Redis unreachable): this replica's own topics, for its own sockets only.
    fleet.role = Role.ALONE
    sent.clear()
    assert await feed.tick() == 1
    assert (sent, delivered) == ([], ["tickers.S01USDT"])
    assert received(conn) == ["tickers.S01USDT"]
    assert await feed.tick() == 0
