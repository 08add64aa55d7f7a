"""A dashboard WebSocket subscribed to `alerts`, keeping every notification pushed to it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from typing import Any, Final

import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

PING_EVERY: Final = 30.0
"""The protocol's `ping` op keeps the app's idle timeout away from a socket that only listens."""


class AlertFeed:
    """Runs in the background of the caller's event loop until `close()`.

    `connections` counts successful subscriptions: 1 at the end of a run means no notification
    can have been missed between a drop and a reconnect.
    """

    def __init__(self, url: str, keep: int = 1000) -> None:
        self.url = url
        self.notifications: deque[dict[str, Any]] = deque(maxlen=keep)
        self.connections = 0
        self._subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self, within: float = 10.0) -> AlertFeed:
        self._task = asyncio.create_task(self._run(), name="alert-feed")
        async with asyncio.timeout(within):
            await self._subscribed.wait()
        return self

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def by_id(self, notification_id: int) -> dict[str, Any] | None:
        for entry in self.notifications:
            if entry.get("id") == notification_id:
                return entry
        return None

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(OSError, TimeoutError, WebSocketException):
                async with connect(self.url, ping_interval=None) as ws:
                    await ws.send(orjson.dumps({"op": "subscribe", "topics": ["alerts"]}).decode())
                    await self._listen(ws)
            self._subscribed.clear()
            await asyncio.sleep(0.2)

    async def _listen(self, ws: ClientConnection) -> None:
        last_ping = time.monotonic()
        while True:
            wait = last_ping + PING_EVERY - time.monotonic()
            if wait <= 0:
                await ws.send(orjson.dumps({"op": "ping"}).decode())
                last_ping = time.monotonic()
                continue
            try:
                async with asyncio.timeout(wait):
                    frame = orjson.loads(await ws.recv())
            except TimeoutError:
                continue
            if frame.get("op") == "ack" and "alerts" in frame.get("topics", []):
                self.connections += 1
                self._subscribed.set()
            elif frame.get("topic") == "alerts":
                self.notifications.append(frame["data"])
