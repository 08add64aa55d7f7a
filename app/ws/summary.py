"""The `websocket` section of GET /api/monitoring/performance/summary."""

from __future__ import annotations

from typing import Any

from app.ws.manager import WebSocketManager
from app.ws.stats import NO_FAMILY, TOPIC_FAMILIES


def websocket_summary(manager: WebSocketManager | None) -> dict[str, Any]:
    """Connections, subscriptions and message counts; None-safe for apps without the layer."""
    if manager is None:
        return {"enabled": False}
    stats = manager.stats
    families = (*TOPIC_FAMILIES, NO_FAMILY)
    connections = manager.registry.connections()
    return {
        "enabled": True,
        "accepting": manager.accepting,
        "active_connections": stats.active_connections,
        "max_connections": manager.config.max_connections,
        "connections_accepted": stats.connections_accepted,
        "connections_rejected": stats.connections_rejected,
        "subscriptions": manager.registry.subscriptions_by_family(),
        "topics": len(manager.registry.active_topics()),
        "messages_sent": sum(stats.messages_sent.values()),
        "messages_received": sum(stats.messages_received.values()),
        "messages_dropped": sum(stats.messages_dropped.values()),
        "by_family": {
            family: {
                "sent": stats.messages_sent[family],
                "received": stats.messages_received[family],
                "dropped": stats.messages_dropped[family],
            }
            for family in families
        },
        "invalid_messages": dict(stats.invalid_messages),
        "closes": {str(code): n for code, n in sorted(stats.closed.items())},
        "slow_consumer_closes": stats.slow_consumer_closes,
        "queued": sum(len(c.outbox) for c in connections),
        "tasks": manager.tasks,
        "feed": {
            "ticks": stats.feed_ticks,
            "errors": stats.feed_errors,
            "polls": stats.feed_polls,
            "publisher": stats.feed_publisher,
        },
        "fleet": {"enabled": False} if manager.fleet_status is None else manager.fleet_status(),
    }
