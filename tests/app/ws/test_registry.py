from __future__ import annotations

from typing import cast

import orjson
from starlette.websockets import WebSocket

from app.ws.connection import Connection
from app.ws.registry import SLOW_CONSUMER_REASON, Registry
from app.ws.stats import WebSocketStats


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(queue_size: int = 4, slow: float = 5.0) -> tuple[Registry, Clock]:
    clock = Clock()
    registry = Registry(
        WebSocketStats(), slow_consumer_timeout=slow, close_timeout=1.0, clock=clock
    )
    return registry, clock


def connect(registry: Registry, conn_id: int, queue_size: int = 4) -> Connection:
    conn = Connection(conn_id, cast(WebSocket, object()), queue_size, 0.0)
    registry.add(conn)
    return conn


def texts(conn: Connection) -> list[dict[str, object]]:
    out = []
    while (item := conn.outbox.pop()) is not None:
        out.append(orjson.loads(item.message["text"]))
    return out


async def test_broadcast_serializes_once_and_reaches_only_subscribers() -> None:
    registry, _ = make()
    a, b, c = (connect(registry, i) for i in range(3))
    registry.subscribe(a, ["alerts"])
    registry.subscribe(b, ["alerts", "tickers.BTCUSDT"])
    assert registry.broadcast("alerts", {"n": 1}) == 2
    assert registry.broadcast("tickers.ETHUSDT", {"n": 2}) == 0
    first_a, first_b = a.outbox.pop(), b.outbox.pop()
    assert first_a is first_b  # one serialized frame shared by every subscriber
    assert first_a is not None
    assert orjson.loads(first_a.message["text"]) == {"topic": "alerts", "data": {"n": 1}}
    assert len(c.outbox) == 0
    assert registry.subscriptions_by_family() == {"tickers": 1, "market": 0, "alerts": 2}
    assert registry.stats.active_connections == 3


async def test_full_queue_drops_oldest_counts_it_and_closes_a_stuck_client() -> None:
    registry, clock = make(slow=5.0)
    slow = connect(registry, 1, queue_size=2)
    fast = connect(registry, 2, queue_size=2)
    registry.subscribe(slow, ["alerts", "market.movers"])
    registry.subscribe(fast, ["alerts"])
    registry.broadcast("market.movers", {"n": 0})
    for n in range(1, 4):
        registry.broadcast("alerts", {"n": n})
        texts(fast)  # the fast client keeps up
    assert registry.stats.messages_dropped == {"market": 1, "alerts": 1}
    assert slow.outbox.full_since == 100.0
    assert [m["data"] for m in texts(slow)] == [{"n": 2}, {"n": 3}]
    assert slow.outbox.full_since is None  # the writer got through: not stuck

    for n in range(4, 7):
        registry.broadcast("alerts", {"n": n})
        texts(fast)
    assert not slow.closing
    clock.now += 5.0
    assert registry.is_stuck(slow, clock.now)
    assert not registry.is_stuck(fast, clock.now)
    registry.broadcast("alerts", {"n": 7})
    assert slow.closing
    assert (slow.close_code, slow.close_reason) == (1013, SLOW_CONSUMER_REASON)
    assert registry.stats.slow_consumer_closes == 1
    assert slow.topics == {}
    assert len(slow.outbox) == 0  # freed at once, counted as dropped
    assert registry.stats.messages_dropped["alerts"] == 1 + 2 + 2
    assert registry.broadcast("alerts", {"n": 8}) == 1
    assert not fast.closing


async def test_unsubscribe_discards_queued_updates_of_that_topic() -> None:
    registry, _ = make()
    conn = connect(registry, 1)
    registry.subscribe(conn, ["alerts", "market.overview"])
    registry.broadcast("alerts", {"n": 1})
    registry.broadcast("market.overview", {"n": 2})
    registry.unsubscribe(conn, ["alerts", "tickers.NEVER"])
    assert [m["topic"] for m in texts(conn)] == ["market.overview"]
    assert registry.active_topics() == ("market.overview",)
    registry.unsubscribe(conn, ["market.overview"])
    assert registry.active_topics() == ()


async def test_new_subscribers_get_the_latest_snapshot_but_no_old_alert() -> None:
    registry, _ = make()
    first = connect(registry, 1)
    registry.subscribe(first, ["tickers.BTCUSDT", "alerts"])
    registry.broadcast("tickers.BTCUSDT", {"price": 1})
    registry.broadcast("tickers.BTCUSDT", {"price": 2})
    registry.broadcast("alerts", {"alert": "old"})
    assert registry.latest("tickers.BTCUSDT") == {"price": 2}
    assert registry.latest("alerts") is None

    late = connect(registry, 2)
    registry.subscribe(late, ["tickers.BTCUSDT", "alerts"])
    assert texts(late) == [{"topic": "tickers.BTCUSDT", "data": {"price": 2}}]

    # Once nobody watches a topic, its snapshot is forgotten with it.
    registry.remove(first)
    registry.remove(late)
    assert registry.latest("tickers.BTCUSDT") is None
    assert len(registry) == 0
    assert registry.active_topics() == ()
