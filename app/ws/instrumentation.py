"""Hooks the WebSocket layer calls at the edges of a socket's life.

The socket code knows nothing about tracing; the telemetry package implements these hooks (short
spans for connect, each inbound op and disconnect, plus the session-duration histogram). Message
counts are NOT reported through hooks: they are plain counters in `WebSocketStats`, read by
observable instruments at collection time, so a broadcast to thousands of sockets costs no SDK
call per message.
"""

from __future__ import annotations

from typing import Protocol


class WebSocketOpScope(Protocol):
    def finish(self, error: str | None = None) -> None:
        """Called once when the operation is done; `error` is a short reason if it failed."""


class WebSocketInstrumentation(Protocol):
    def connect(self, route: str) -> WebSocketOpScope:
        """A client asked to connect to `route` (a route template such as /ws/dashboard)."""

    def inbound(self, route: str, op: str, topic_family: str | None) -> WebSocketOpScope:
        """A client frame is being handled. `op` is bounded (subscribe, unsubscribe, ping,
        invalid); `topic_family` is bounded too (tickers, market, alerts) or None."""

    def disconnect(self, route: str, close_code: int, duration_s: float) -> None:
        """A socket is gone, for whatever reason; called exactly once per accepted socket."""


class _NoopScope:
    __slots__ = ()

    def finish(self, error: str | None = None) -> None:
        return None


class NoopWebSocketInstrumentation:
    __slots__ = ()
    _scope = _NoopScope()

    def connect(self, route: str) -> WebSocketOpScope:
        return self._scope

    def inbound(self, route: str, op: str, topic_family: str | None) -> WebSocketOpScope:
        return self._scope

    def disconnect(self, route: str, close_code: int, duration_s: float) -> None:
        return None
