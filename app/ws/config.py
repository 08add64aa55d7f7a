"""The WebSocket layer's limits, taken from the settings once so the layer can be built alone.

Each field `x` is the setting `ws_x`: its default and its meaning live in app/settings.py only, so
a default changed there is the default here too (tests build the layer with `WebSocketConfig()`).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from app.settings import Settings


def _setting_default(name: str) -> Any:
    """The default of setting `ws_<name>`, read from the settings model."""
    return Settings.model_fields[f"ws_{name}"].get_default(call_default_factory=True)


@dataclass(frozen=True, slots=True)
class WebSocketConfig:
    """See the `WS_*` settings in app/settings.py for what each limit means."""

    idle_timeout: float = _setting_default("idle_timeout")
    cleanup_interval: float = _setting_default("cleanup_interval")
    max_connections: int = _setting_default("max_connections")
    max_subscriptions: int = _setting_default("max_subscriptions")
    queue_size: int = _setting_default("queue_size")
    slow_consumer_timeout: float = _setting_default("slow_consumer_timeout")
    max_message_bytes: int = _setting_default("max_message_bytes")
    max_invalid_messages: int = _setting_default("max_invalid_messages")
    close_timeout: float = _setting_default("close_timeout")
    shutdown_timeout: float = _setting_default("shutdown_timeout")

    @classmethod
    def from_settings(cls, settings: Settings) -> WebSocketConfig:
        return cls(**{f.name: getattr(settings, f"ws_{f.name}") for f in fields(cls)})
