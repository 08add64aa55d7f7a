"""Counters of the WebSocket layer, kept as plain integers.

A broadcast to a thousand sockets must not cost a thousand metric-SDK calls, so nothing here is an
instrument: the hot path bumps dict entries, and the telemetry package reads these attributes
through observable instruments at collection time. Every key is bounded: topic families, close
codes from a fixed set, invalid-message kinds from a fixed set, never a symbol or a client's text.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

#: Topic families, the part of a topic before its first dot; "none" is for frames without a topic
#: (ping, pong, ack, error and invalid frames).
TOPIC_FAMILIES: Final = ("tickers", "market", "alerts")
NO_FAMILY: Final = "none"

#: Close codes that can be counted as themselves: those this service sends (1000, 1001, 1003,
#: 1008, 1009, 1011, 1013) and those the protocol layer or a peer can report (1002, 1005, 1006,
#: 1007, 1012). Every other code a peer may choose (3000-4999, ...) is counted as OTHER_CLOSE_CODE.
CLOSE_CODES: Final = frozenset(
    {1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1011, 1012, 1013}
)
OTHER_CLOSE_CODE: Final = 0


def bounded_close_code(code: int) -> int:
    """`code` itself if it is in CLOSE_CODES, else OTHER_CLOSE_CODE: a label must stay bounded."""
    return code if code in CLOSE_CODES else OTHER_CLOSE_CODE


class WebSocketStats:
    """What the WebSocket layer did since start; read by telemetry, never reset.

    Attributes (telemetry names from the project conventions in brackets):

    - `active_connections`: sockets registered right now, handshakes in progress included
      [`websocket.connections.active`].
    - `connections_accepted` / `connections_rejected`: handshakes completed and registered, and
      arrivals turned away (connection limit reached: 1013; shutting down: 1001).
    - `closed`: sockets closed, by close code (`bounded_close_code`), rejections included
      [`websocket.connections.closed{websocket.close_code}`].
    - `messages_sent` / `messages_received` / `messages_dropped`: frames by topic family
      (TOPIC_FAMILIES or NO_FAMILY) [`websocket.messages.sent/received/dropped
      {websocket.topic_family}`]. Sent counts frames handed to the server; dropped counts updates
      discarded from a full per-client queue (oldest first) or left queued when a socket closed.
    - `invalid_messages`: client frames refused, by kind (see `app.ws.protocol.INVALID_KINDS`).
    - `slow_consumer_closes`: clients closed with 1013 because their queue stayed full.
    - `feed_ticks` / `feed_errors`: market-feed rounds run, and rounds that failed (upstream
      down, ...) and were retried on the next tick.
    - `feed_polls`: rounds in which this replica read the market (it was the publisher and some
      replica had subscribers); with several replicas only one of them counts up.
    - `feed_publisher`: whether this replica's feed publishes, for the whole fleet or (Redis
      unreachable, or no Redis at all) for its own sockets [`websocket.feed.publisher`].
    - `broker_connected`: whether this replica is subscribed to the fleet's broadcast channel.
    - `broker_published` / `broker_received` / `broker_dropped`: broadcasts sent to the other
      replicas, received from them, and not sent (Redis slow or down, or the bounded publish
      queue full), by topic family [`websocket.broker.messages.published/received/dropped`].
    - `broker_reconnects`: times the broadcast subscription was established again after a loss.
    """

    __slots__ = (
        "active_connections",
        "broker_connected",
        "broker_dropped",
        "broker_published",
        "broker_received",
        "broker_reconnects",
        "closed",
        "connections_accepted",
        "connections_rejected",
        "feed_errors",
        "feed_polls",
        "feed_publisher",
        "feed_ticks",
        "invalid_messages",
        "messages_dropped",
        "messages_received",
        "messages_sent",
        "slow_consumer_closes",
    )

    def __init__(self) -> None:
        self.active_connections = 0
        self.connections_accepted = 0
        self.connections_rejected = 0
        self.closed: Counter[int] = Counter()
        self.messages_sent: Counter[str] = Counter()
        self.messages_received: Counter[str] = Counter()
        self.messages_dropped: Counter[str] = Counter()
        self.invalid_messages: Counter[str] = Counter()
        self.slow_consumer_closes = 0
        self.feed_ticks = 0
        self.feed_errors = 0
        self.feed_polls = 0
        self.feed_publisher = True
        self.broker_connected = False
        self.broker_published: Counter[str] = Counter()
        self.broker_received: Counter[str] = Counter()
        self.broker_dropped: Counter[str] = Counter()
        self.broker_reconnects = 0

    def record_close(self, code: int) -> None:
        self.closed[bounded_close_code(code)] += 1
