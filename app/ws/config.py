"""The WebSocket layer's limits, taken from the settings once so the layer can be built alone."""

from __future__ import annotations

from dataclasses import dataclass

from app.settings import Settings


@dataclass(frozen=True, slots=True)
class WebSocketConfig:
    """See the `WS_*` settings in app/settings.py for what each limit means."""

    idle_timeout: float = 300.0
    cleanup_interval: float = 30.0
    max_connections: int = 1000
    max_subscriptions: int = 100
    queue_size: int = 256
    slow_consumer_timeout: float = 10.0
    max_message_bytes: int = 4096
    max_invalid_messages: int = 5
    close_timeout: float = 5.0
    shutdown_timeout: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> WebSocketConfig:
        return cls(
            idle_timeout=settings.ws_idle_timeout,
            cleanup_interval=settings.ws_cleanup_interval,
            max_connections=settings.ws_max_connections,
            max_subscriptions=settings.ws_max_subscriptions,
            queue_size=settings.ws_queue_size,
            slow_consumer_timeout=settings.ws_slow_consumer_timeout,
            max_message_bytes=settings.ws_max_message_bytes,
            max_invalid_messages=settings.ws_max_invalid_messages,
            close_timeout=settings.ws_close_timeout,
            shutdown_timeout=settings.ws_shutdown_timeout,
        )
