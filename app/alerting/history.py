"""The most recent Alertmanager notifications, and the hook that publishes each one live.

The history is bounded twice: by count and by the serialized size of what it keeps (one
notification can be hundreds of kilobytes of annotations). The oldest notifications fall off
first; one larger than `max_entry_bytes` is refused. Memory stays flat however long the app runs
and whoever posts, and so does the size of GET /api/alerts/recent.

Publishing goes through a callback so this module knows nothing about WebSockets; a
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

import orjson

from app.alerting.models import WebhookPayload
from app.ratelimit_log import RateLimitedLogger

log = logging.getLogger(__name__)

DEFAULT_CAPACITY: Final = 200
DEFAULT_MAX_BYTES: Final = 8 * 1024 * 1024
DEFAULT_MAX_ENTRY_BYTES: Final = 256 * 1024
NotificationCallback = Callable[[dict[str, Any]], Awaitable[None]]


class NotificationTooLarge(ValueError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"the notification takes {size} bytes, more than {limit}")
        self.size = size
        self.limit = limit


class AlertHistory:
    """Newest-first view over the last notifications that fit `capacity` and `max_bytes`."""

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY,
        on_notification: NotificationCallback | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        if not 0 < max_entry_bytes <= max_bytes:
            raise ValueError("max_entry_bytes must be positive and at most max_bytes")
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.max_entry_bytes = max_entry_bytes
        self.on_notification = on_notification
        self._entries: deque[dict[str, Any]] = deque()
        self._sizes: deque[int] = deque()
        self.bytes = 0
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
        `alerts` topic carries. Raises `NotificationTooLarge` (nothing kept, no id used) when
        its JSON exceeds `max_entry_bytes`.
        """
        entry: dict[str, Any] = {
            "id": 0,
            "receivedAt": self._clock().isoformat().replace("+00:00", "Z"),
            **payload.model_dump(mode="json"),
        }
        size = len(orjson.dumps(entry)) + 16  # room for the id's digits
        if size > self.max_entry_bytes:
            raise NotificationTooLarge(size, self.max_entry_bytes)
        entry["id"] = next(self._ids)
        while self._entries and (
            len(self._entries) >= self.capacity or self.bytes + size > self.max_bytes
        ):
            self._entries.popleft()
            self.bytes -= self._sizes.popleft()
        self._entries.append(entry)
        self._sizes.append(size)
        self.bytes += size
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
