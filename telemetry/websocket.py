"""WebSocket telemetry: short spans at the edges of a socket's life, counters read from its stats.

No span lives as long as the socket: `WS connect <route>`, one `WS <op> <route>` per inbound
frame, and `WS disconnect` carrying the close code and the session's duration. Each is a local
root decided by the same keep rule as HTTP requests (slow or failed, or the sampled ratio).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Histogram, Meter, Observation
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from app.ws.instrumentation import WebSocketOpScope
from app.ws.stats import WebSocketStats
from telemetry.roots import LocalRoots, RootScope


class _OpScope:
    __slots__ = ("_attributes", "_root", "_roots")

    def __init__(
        self, roots: LocalRoots, root: RootScope, attributes: dict[str, AttributeValue]
    ) -> None:
        self._roots = roots
        self._root = root
        self._attributes = attributes

    def finish(self, error: str | None = None) -> None:
        if error:
            self._attributes["error.type"] = error
        self._roots.settle(self._root, error is not None, description=error)
        self._root.annotate(self._attributes)
        self._roots.close(self._root)


class WebSocketTelemetry:
    """Implements `app.ws.instrumentation.WebSocketInstrumentation`."""

    def __init__(self, roots: LocalRoots, session_duration: Histogram) -> None:
        self._roots = roots
        self._duration = session_duration

    def connect(self, route: str) -> WebSocketOpScope:
        root = self._roots.open(f"WS connect {route}", SpanKind.SERVER)
        return _OpScope(self._roots, root, {"http.route": route})

    def inbound(self, route: str, op: str, topic_family: str | None) -> WebSocketOpScope:
        root = self._roots.open(f"WS {op} {route}", SpanKind.SERVER)
        attributes: dict[str, AttributeValue] = {"http.route": route, "websocket.op": op}
        if topic_family:
            attributes["websocket.topic_family"] = topic_family
        return _OpScope(self._roots, root, attributes)

    def disconnect(self, route: str, close_code: int, duration_s: float) -> None:
        self._duration.record(duration_s, {"websocket.close_code": close_code})
        root = self._roots.open("WS disconnect", SpanKind.SERVER)
        root.annotate(
            {
                "http.route": route,
                "websocket.close_code": close_code,
                "websocket.session.duration": duration_s,
            }
        )
        # A normal close (1000/1001) is not a failure; anything else is worth keeping.
        failed = close_code not in (1000, 1001, 1005)
        self._roots.settle(root, failed, description=f"close code {close_code}" if failed else None)
        self._roots.close(root)


def register_websocket_observers(meter: Meter, stats: WebSocketStats) -> None:
    def active(_: CallbackOptions) -> Iterable[Observation]:
        yield Observation(stats.active_connections)

    def closed(_: CallbackOptions) -> Iterable[Observation]:
        for code, count in list(stats.closed.items()):
            yield Observation(count, {"websocket.close_code": code})

    def publisher(_: CallbackOptions) -> Iterable[Observation]:
        yield Observation(int(stats.feed_publisher))

    def broker_connected(_: CallbackOptions) -> Iterable[Observation]:
        yield Observation(int(stats.broker_connected))

    def by_family(counter: Counter[str]) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def observe(_: CallbackOptions) -> Iterable[Observation]:
            for family, count in list(counter.items()):
                yield Observation(count, {"websocket.topic_family": family})

        return observe

    meter.create_observable_up_down_counter(
        "websocket.connections.active",
        [active],
        unit="{connection}",
        description="Open WebSocket connections.",
    )
    meter.create_observable_counter(
        "websocket.connections.closed",
        [closed],
        unit="{connection}",
        description="Closed WebSocket connections by close code.",
    )
    relayed = "between replicas through Redis"
    for name, counter, what in (
        ("websocket.messages.sent", stats.messages_sent, "Frames handed to clients"),
        ("websocket.messages.received", stats.messages_received, "Frames received"),
        ("websocket.messages.dropped", stats.messages_dropped, "Updates dropped (full queue)"),
        (
            "websocket.broker.messages.published",
            stats.broker_published,
            f"Broadcasts relayed {relayed}",
        ),
        (
            "websocket.broker.messages.received",
            stats.broker_received,
            f"Broadcasts received {relayed}",
        ),
        (
            "websocket.broker.messages.dropped",
            stats.broker_dropped,
            f"Broadcasts not relayed {relayed}",
        ),
    ):
        meter.create_observable_counter(
            name,
            [by_family(counter)],
            unit="{message}",
            description=f"{what}, by topic family.",
        )
    meter.create_observable_gauge(
        "websocket.feed.publisher",
        [publisher],
        unit="1",
        description="1 while this replica's market feed polls upstream and publishes (for the "
        "fleet, or alone when Redis is unreachable or not configured), 0 while another does.",
    )
    meter.create_observable_gauge(
        "websocket.broker.connected",
        [broker_connected],
        unit="1",
        description="1 while this replica is subscribed to the fleet's broadcast channel in "
        "Redis; 0 without Redis.",
    )
