"""Push alert notifications to the dashboards' `alerts` WebSocket topic."""

from __future__ import annotations

from typing import Any

from app.alerting.history import NotificationCallback
from app.ws.manager import WebSocketManager
from app.ws.topics import ALERTS


def broadcast_to(manager: WebSocketManager) -> NotificationCallback:
    """The `on_notification` hook of an `AlertHistory` that fans each notification out to the
    subscribers of `alerts` (never waits: slow subscribers drop their oldest updates)."""

    async def publish(entry: dict[str, Any]) -> None:
        manager.broadcast(ALERTS, entry)

    return publish
