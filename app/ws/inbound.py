"""What happens to each frame a client sends: parsed, answered, or refused.

Bad input never kills a session's task: each refusal is an error frame, and only a client that
keeps sending bad frames (or one frame too big to read) is closed, with the close code that says
why: 1003 for binary frames, 1008 for malformed requests, 1009 for oversized frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from app.upstream.client import UpstreamError
from app.ws.config import WebSocketConfig
from app.ws.connection import Connection
from app.ws.instrumentation import WebSocketInstrumentation
from app.ws.outbox import Outgoing
from app.ws.protocol import (
    INVALID_OP,
    MESSAGE_TOO_BIG,
    PONG,
    ROUTE,
    UNSUPPORTED_DATA,
    InvalidFrame,
    Message,
    ack_message,
    error_message,
    parse_client_frame,
)
from app.ws.registry import Registry
from app.ws.stats import NO_FAMILY, WebSocketStats
from app.ws.topics import TopicCatalog, common_family, normalize

#: RFC 6455 limits a close reason to 123 bytes.
MAX_CLOSE_REASON: Final = 123


def close_reason(text: str) -> str:
    return text.encode()[:MAX_CLOSE_REASON].decode(errors="ignore")


class InboundHandler:
    def __init__(
        self,
        registry: Registry,
        catalog: TopicCatalog,
        config: WebSocketConfig,
        instrumentation: WebSocketInstrumentation,
    ) -> None:
        self.registry = registry
        self.catalog = catalog
        self.config = config
        self.instrumentation = instrumentation
        self.stats: WebSocketStats = registry.stats

    async def handle(self, conn: Connection, message: Mapping[str, Any], now: float) -> None:
        """Handle one `websocket.receive` event; `now` is the clock reading at its arrival."""
        limit = self.config.max_message_bytes
        text: str | None = message.get("text")
        if text is None:
            raw: bytes = message.get("bytes") or b""
            if len(raw) > limit:
                self._refuse(conn, _too_big(limit), close_now=True)
            else:
                self._refuse(
                    conn,
                    InvalidFrame(
                        "binary",
                        "binary frames are not supported: send JSON text",
                        UNSUPPORTED_DATA,
                    ),
                )
            return
        if len(text) > limit or len(text.encode()) > limit:
            self._refuse(conn, _too_big(limit), close_now=True)
            return
        try:
            frame = parse_client_frame(text, self.config.max_subscriptions)
        except InvalidFrame as exc:
            self._refuse(conn, exc)
            return

        family = common_family(frame.topics)
        self.stats.messages_received[family or NO_FAMILY] += 1
        conn.last_seen = now
        scope = self.instrumentation.inbound(ROUTE, frame.op, family)
        error: str | None = None
        try:
            if frame.op == "ping":
                self.reply(conn, PONG)
            elif frame.op == "subscribe":
                error = await self._subscribe(conn, frame.topics)
            else:
                self._unsubscribe(conn, frame.topics)
        except BaseException as exc:
            scope.finish(type(exc).__name__)
            raise
        scope.finish(error)

    def reply(self, conn: Connection, message: Message) -> None:
        """Queue an answer to the client's own request (the read loop keeps the lane bounded)."""
        conn.outbox.put_control(Outgoing(message))

    async def _subscribe(self, conn: Connection, topics: tuple[str, ...]) -> str | None:
        try:
            resolution = await self.catalog.resolve(topics)
        except UpstreamError:
            self.reply(
                conn,
                error_message(
                    "symbols cannot be checked right now: the exchange is unavailable",
                    request="subscribe",
                    topics=list(topics),
                ),
            )
            return "upstream_unavailable"
        if conn.closing:
            return None
        if resolution.unknown:
            self.reply(
                conn,
                error_message(
                    "unknown topic", request="subscribe", topics=list(resolution.unknown)
                ),
            )
            return "unknown_topic"
        new = [t for t in resolution.known if t not in conn.topics]
        limit = self.config.max_subscriptions
        if len(conn.topics) + len(new) > limit:
            self.reply(
                conn,
                error_message(
                    f"subscription limit reached: at most {limit} topics per connection",
                    request="subscribe",
                    topics=new,
                ),
            )
            return "subscription_limit"
        # The acknowledgement goes out ahead of any update of the new topics (replies first).
        self.reply(conn, ack_message("subscribe", resolution.known, len(conn.topics) + len(new)))
        self.registry.subscribe(conn, new)
        return None

    def _unsubscribe(self, conn: Connection, topics: tuple[str, ...]) -> None:
        # Topics that do not exist cannot be subscribed to: unsubscribing from them is a no-op.
        wanted = tuple(dict.fromkeys(t for t in map(normalize, topics) if t is not None))
        self.registry.unsubscribe(conn, wanted)
        self.reply(conn, ack_message("unsubscribe", wanted, len(conn.topics)))

    def _refuse(self, conn: Connection, exc: InvalidFrame, *, close_now: bool = False) -> None:
        scope = self.instrumentation.inbound(ROUTE, INVALID_OP, None)
        self.stats.messages_received[NO_FAMILY] += 1
        self.stats.invalid_messages[exc.kind] += 1
        conn.invalid_frames += 1
        if close_now:
            conn.request_close(exc.close_code, close_reason(exc.reason), self.config.close_timeout)
        elif conn.invalid_frames >= self.config.max_invalid_messages:
            conn.request_close(
                exc.close_code,
                close_reason(f"too many invalid frames; last: {exc.reason}"),
                self.config.close_timeout,
            )
        else:
            self.reply(conn, error_message(exc.reason, kind=exc.kind))
        scope.finish(exc.kind)


def _too_big(limit: int) -> InvalidFrame:
    return InvalidFrame("too_big", f"frame exceeds {limit} bytes", MESSAGE_TOO_BIG)
