"""The most recent Alertmanager notifications, and the hook that publishes each one live.

The history is a bounded deque: old notifications fall off, memory stays flat however long the
app runs. Publishing goes through a callback so this module knows nothing about WebSockets; a
failing callback is logged and swallowed, because Alertmanager would otherwise retry a
notification the history already holds, and dashboards would see it twice.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, Final

from app.alerting.models import WebhookPayload
from app.ratelimit_log import RateLimitedLogger

log = logging.getLogger(__name__)

DEFAULT_CAPACITY: Final = 200
NotificationCallback = Callable[[dict[str, Any]], Awaitable[None]]


class AlertHistory:
    """Newest-first view over the last `capacity` notifications, each published once."""

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        on_notification: NotificationCallback | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.on_notification = on_notification
        self._entries: deque[dict[str, Any]] = deque(maxlen=capacity)
        self._ids = itertools.count(1)
        self._clock = clock
        self._warn = RateLimitedLogger(log)
        self.received = 0
        self.publish_errors = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def record(self, payload: WebhookPayload) -> dict[str, Any]:
        """Keep `payload` and publish it; returns the stored entry.

        The entry is Alertmanager's payload plus `id` (increasing, never reused) and
        `receivedAt` (ISO 8601, UTC), the same document GET /api/alerts/recent lists and the
        `alerts` topic carries.
        """
        entry: dict[str, Any] = {
            "id": next(self._ids),
            "receivedAt": self._clock().isoformat().replace("+00:00", "Z"),
            **payload.model_dump(mode="json"),
        }
        self._entries.append(entry)
        self.received += 1
        if self.on_notification is not None:
            try:
                await self.on_notification(entry)
            except Exception as exc:
                self.publish_errors += 1
                self._warn.warning(
                    "publish", "alert notification %d not published: %r", entry["id"], exc
                )
        return entry

    def recent(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Newest first; at most `limit` entries (all kept ones when None)."""
        count = len(self._entries) if limit is None else max(0, min(limit, len(self._entries)))
        return list(itertools.islice(reversed(self._entries), count))
