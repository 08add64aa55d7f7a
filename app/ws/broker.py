"""Broadcasts between replicas over one Redis pub/sub channel.

Each replica delivers its own broadcasts to its own sockets at once (`WebSocketManager.broadcast`)
and hands them to `RedisBroker.publish`, which relays them to the other replicas; a replica
ignores what comes back on the channel from itself (every message carries its origin). So a
broadcast reaches each socket of the fleet once: locally on its own replica, through Redis on
the others, and the local path keeps working when Redis does not.

Delivery between replicas is at most once: Redis pub/sub keeps nothing for a subscriber that is
not connected, and a message that cannot be sent is counted as dropped, never retried later (a
market snapshot is stale by then, and a late alert would read as new). The publish path never
waits and never queues without bound: `publish` appends to a queue of `queue_size` messages
that one task drains in pipelined batches; while Redis is slow the queue fills and the excess is
dropped, and after a failed send everything is dropped until a backoff has passed, so a Redis
that is down costs one connection attempt per backoff, not one per broadcast.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.ratelimit_log import RateLimitedLogger
from app.ws.stats import NO_FAMILY, WebSocketStats
from app.ws.supervisor import Backoff, supervise
from app.ws.topics import family_of

log = logging.getLogger(__name__)

#: Messages waiting to be sent to Redis at most; beyond that, new ones are dropped and counted.
PUBLISH_QUEUE_SIZE: Final = 1024
#: Messages sent in one pipelined round trip at most.
PUBLISH_BATCH: Final = 128
#: Seconds one wait for a subscribed message lasts before the loop checks its state again.
_LISTEN_POLL: Final = 1.0

Deliver = Callable[[str, Any], object]
_SEND_ERRORS: Final = (RedisError, OSError, asyncio.TimeoutError)


class RedisBroker:
    """Relays broadcasts to the other replicas and hands theirs to `deliver` (local sockets).

    `replica_id` must be unique in the fleet; `channel` is shared by the whole fleet.
    """

    def __init__(
        self,
        redis: Redis,
        channel: str,
        replica_id: str,
        deliver: Deliver,
        stats: WebSocketStats,
        *,
        queue_size: int = PUBLISH_QUEUE_SIZE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if queue_size < 1:
            raise ValueError("queue_size must be >= 1")
        self.redis = redis
        self.channel = channel
        self.replica_id = replica_id
        self.stats = stats
        self.queue_size = queue_size
        self._deliver = deliver
        self._clock = clock
        self._queue: deque[tuple[str, bytes]] = deque()
        self._wakeup = asyncio.Event()
        self._down_until = 0.0
        self._send_backoff = Backoff()
        self._listen_backoff = Backoff()
        self._tasks: list[asyncio.Task[None]] = []
        self._warn = RateLimitedLogger(log)
        self._ever_connected = False

    @property
    def connected(self) -> bool:
        return self.stats.broker_connected

    @property
    def queued(self) -> int:
        return len(self._queue)

    # ------------------------------------------------------------------ publishing
    def publish(self, topic: str, data: Any) -> None:
        """Queue `{"topic": topic, "data": data}` for the other replicas; never waits.

        Raises TypeError if `data` is not JSON-serializable (as a local broadcast does).
        """
        family = family_of(topic) or NO_FAMILY
        payload = orjson.dumps({"origin": self.replica_id, "topic": topic, "data": data})
        if len(self._queue) >= self.queue_size or self._clock() < self._down_until:
            self.stats.broker_dropped[family] += 1
            return
        self._queue.append((family, payload))
        self._wakeup.set()

    async def _send_forever(self) -> None:
        while True:
            if not self._queue:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch = [self._queue.popleft() for _ in range(min(PUBLISH_BATCH, len(self._queue)))]
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for _, payload in batch:
                        pipe.publish(self.channel, payload)
                    await pipe.execute()
            except _SEND_ERRORS as exc:
                self._send_failed(batch, exc)
                continue
            self._send_backoff.reset()
            published = self.stats.broker_published
            for family, _ in batch:
                published[family] += 1

    def _send_failed(self, batch: list[tuple[str, bytes]], exc: BaseException) -> None:
        """Drop the batch and whatever waits behind it, and refuse new messages for a backoff:
        they would be stale by the time Redis answers again."""
        dropped = self.stats.broker_dropped
        for family, _ in batch:
            dropped[family] += 1
        while self._queue:
            dropped[self._queue.popleft()[0]] += 1
        delay = self._send_backoff.next()
        self._down_until = self._clock() + delay
        self._warn.warning(
            "send",
            "cannot relay broadcasts to the other replicas (%r); dropping them for %.2f s",
            exc,
            delay,
        )

    # ------------------------------------------------------------------ receiving
    async def _listen(self) -> None:
        """One subscription to the channel, until the connection fails."""
        pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(self.channel)
            if self._ever_connected:
                self.stats.broker_reconnects += 1
                log.info("fleet broadcasts: subscribed to %s again", self.channel)
            self._ever_connected = True
            self.stats.broker_connected = True
            self._listen_backoff.reset()
            while True:
                message = await pubsub.get_message(timeout=_LISTEN_POLL)
                if message is not None and message.get("type") == "message":
                    self._received(message["data"])
        finally:
            self.stats.broker_connected = False
            with contextlib.suppress(*_SEND_ERRORS):
                await pubsub.aclose()  # type: ignore[no-untyped-call]

    def _received(self, raw: bytes) -> None:
        """Deliver a message from another replica to the local sockets; skip our own."""
        try:
            message = orjson.loads(raw)
            origin, topic, data = message["origin"], message["topic"], message["data"]
        except (orjson.JSONDecodeError, TypeError, KeyError) as exc:
            self._warn.warning("malformed", "ignored a malformed fleet broadcast: %r", exc)
            return
        if origin == self.replica_id or not isinstance(topic, str):
            return
        self.stats.broker_received[family_of(topic) or NO_FAMILY] += 1
        try:
            self._deliver(topic, data)
        except Exception as exc:
            self._warn.warning("deliver", "delivering a fleet broadcast failed: %r", exc)

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(
                supervise("fleet broadcast subscriber", self._listen, self._listen_backoff),
                name="ws-broker-listen",
            ),
            asyncio.create_task(
                supervise("fleet broadcast sender", self._send_forever, Backoff()),
                name="ws-broker-send",
            ),
        ]

    @property
    def running(self) -> bool:
        return bool(self._tasks) and all(not t.done() for t in self._tasks)

    async def close(self) -> None:
        """Stop both loops; messages still queued are counted as dropped."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks)
        dropped = self.stats.broker_dropped
        while self._queue:
            dropped[self._queue.popleft()[0]] += 1
