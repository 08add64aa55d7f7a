"""Who is connected and who listens to what; the broadcast hot path.

Nothing here awaits, so no other code runs between two statements of one call: a broadcast sees
one consistent set of subscribers. Loops still run over snapshots (tuples), because the loop body
may close a slow consumer and so change the set it came from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Final

from app.ws.connection import Connection
from app.ws.outbox import Outgoing
from app.ws.protocol import TRY_AGAIN_LATER, update_message
from app.ws.stats import TOPIC_FAMILIES, WebSocketStats
from app.ws.topics import SNAPSHOT_FAMILIES, family_of

SLOW_CONSUMER_REASON: Final = "slow consumer: updates were not read in time"


class _Topic:
    __slots__ = ("family", "last", "last_data", "subscribers")

    def __init__(self, family: str) -> None:
        self.family = family
        #: Ordered set: delivery order across subscribers is stable, which keeps runs comparable.
        self.subscribers: dict[Connection, None] = {}
        #: The latest update of a snapshot topic, sent at once to each new subscriber, and the
        #: data it carried (what a publisher compares with to skip unchanged snapshots).
        self.last: Outgoing | None = None
        self.last_data: Any = None


class Registry:
    def __init__(
        self,
        stats: WebSocketStats,
        *,
        slow_consumer_timeout: float,
        close_timeout: float,
        clock: Callable[[], float],
    ) -> None:
        self.stats = stats
        self.slow_consumer_timeout = slow_consumer_timeout
        self.close_timeout = close_timeout
        self._clock = clock
        self._connections: dict[int, Connection] = {}
        self._topics: dict[str, _Topic] = {}

    # ------------------------------------------------------------------ connections
    def __len__(self) -> int:
        return len(self._connections)

    def connections(self) -> tuple[Connection, ...]:
        return tuple(self._connections.values())

    def add(self, conn: Connection) -> None:
        self._connections[conn.id] = conn
        self.stats.active_connections = len(self._connections)

    def remove(self, conn: Connection) -> None:
        """Forget a connection entirely: subscriptions, queued frames, registry entry."""
        self._unsubscribe_all(conn)
        self._drop_queued(conn)
        self._connections.pop(conn.id, None)
        self.stats.active_connections = len(self._connections)

    # ------------------------------------------------------------------ subscriptions
    def subscribe(self, conn: Connection, topics: Iterable[str]) -> None:
        """Add subscriptions (topics already validated); a new subscriber of a snapshot topic is
        sent its latest update at once."""
        for topic in topics:
            if topic in conn.topics:
                continue
            entry = self._topics.get(topic)
            if entry is None:
                family = family_of(topic)
                assert family is not None, topic
                entry = self._topics[topic] = _Topic(family)
            entry.subscribers[conn] = None
            conn.topics[topic] = None
            if entry.last is not None:
                self._enqueue(conn, entry.last)

    def unsubscribe(self, conn: Connection, topics: Iterable[str]) -> None:
        """Remove subscriptions; updates of those topics still queued for `conn` are discarded,
        so nothing of them arrives after the client's acknowledgement."""
        for topic in topics:
            if topic in conn.topics:
                del conn.topics[topic]
                self._remove_subscriber(topic, conn)
                conn.outbox.discard_topic(topic)

    def active_topics(self) -> tuple[str, ...]:
        return tuple(self._topics)

    def latest(self, topic: str) -> Any:
        """The data last broadcast on a snapshot topic that has subscribers, else None."""
        entry = self._topics.get(topic)
        return None if entry is None else entry.last_data

    def subscriptions_by_family(self) -> dict[str, int]:
        counts = dict.fromkeys(TOPIC_FAMILIES, 0)
        for entry in self._topics.values():
            counts[entry.family] += len(entry.subscribers)
        return counts

    def subscribers(self, topic: str) -> int:
        entry = self._topics.get(topic)
        return 0 if entry is None else len(entry.subscribers)

    # ------------------------------------------------------------------ fan-out
    def broadcast(self, topic: str, data: Any) -> int:
        """Send `{"topic": topic, "data": data}` to every subscriber of `topic`.

        Serializes once (orjson), then only appends to each subscriber's bounded queue: never
        waits, whatever the clients do. Returns the number of subscribers reached; a topic nobody
        subscribed to costs a dict lookup and nothing is serialized. Raises TypeError if `data`
        is not JSON-serializable.
        """
        entry = self._topics.get(topic)
        if entry is None:
            return 0
        item = Outgoing(update_message(topic, data), entry.family, topic)
        if entry.family in SNAPSHOT_FAMILIES:
            entry.last = item
            entry.last_data = data
        subscribers = tuple(entry.subscribers)
        for conn in subscribers:
            dropped = conn.outbox.put_nowait(item)
            if dropped is not None:
                self._dropped(conn, dropped)
        return len(subscribers)

    def deliver(self, topic: str, data: Any) -> int:
        """`broadcast`: a registry only ever reaches this replica's sockets."""
        return self.broadcast(topic, data)

    def _enqueue(self, conn: Connection, item: Outgoing) -> None:
        dropped = conn.outbox.put_nowait(item)
        if dropped is not None:
            self._dropped(conn, dropped)

    def _dropped(self, conn: Connection, dropped: Outgoing) -> None:
        """Count a dropped update; close the client once it has been dropping for too long."""
        outbox = conn.outbox
        self.stats.messages_dropped[dropped.family] += 1
        now = self._clock()
        if outbox.full_since is None:
            outbox.full_since = now
        elif now - outbox.full_since >= self.slow_consumer_timeout:
            self.close_slow_consumer(conn)

    def close_slow_consumer(self, conn: Connection) -> None:
        """Close with 1013 a client that stopped reading; its queue and subscriptions go now, so
        no later broadcast spends anything on it while the close frame waits to get out."""
        if not conn.request_close(TRY_AGAIN_LATER, SLOW_CONSUMER_REASON, self.close_timeout):
            return
        self.stats.slow_consumer_closes += 1
        self._unsubscribe_all(conn)
        self._drop_queued(conn)

    def is_stuck(self, conn: Connection, now: float) -> bool:
        """Whether the client has been dropping updates for longer than the slow-consumer limit."""
        since = conn.outbox.full_since
        return since is not None and now - since >= self.slow_consumer_timeout

    # ------------------------------------------------------------------ internals
    def _unsubscribe_all(self, conn: Connection) -> None:
        for topic in tuple(conn.topics):
            self._remove_subscriber(topic, conn)
        conn.topics.clear()

    def _remove_subscriber(self, topic: str, conn: Connection) -> None:
        entry = self._topics.get(topic)
        if entry is None:
            return
        entry.subscribers.pop(conn, None)
        if not entry.subscribers:
            del self._topics[topic]

    def _drop_queued(self, conn: Connection) -> None:
        dropped = self.stats.messages_dropped
        for item in conn.outbox.clear():
            dropped[item.family] += 1
