"""Which replica's market feed polls upstream for the whole fleet, and for which topics.

One Redis key is the publisher's lease: a replica takes it with `SET key id NX PX ttl` and keeps
it by extending it every third of the TTL, with a script that extends it only if it still holds
its own id (check-and-extend in one step, so a replica whose lease expired and was taken over
never extends the new owner's). A replica that dies stops renewing: its lease runs out and the
next replica to try takes it, within the TTL plus a third of it. A replica that stops cleanly
deletes its lease (again only if it is its own), so another takes over at its next renewal.

Every replica also advertises the topics its sockets subscribe to, under its own key that
expires with the same TTL, listed in a sorted set of replica ids: the publisher polls upstream
once per round for the union of those topics, so a topic watched on any replica is published,
and a replica that died stops costing anything once its key expires.

When Redis cannot be reached, the replica is `alone`: its feed publishes for its own sockets,
from its own upstream reads, until Redis answers again and the lease decides anew.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from enum import StrEnum
from typing import Final

import orjson
from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.ratelimit_log import RateLimitedLogger
from app.ws.stats import WebSocketStats
from app.ws.supervisor import Backoff, supervise

log = logging.getLogger(__name__)

#: KEYS[1] lease key; ARGV[1] replica id, ARGV[2] TTL in ms. 1 if the lease is ours (extended).
_EXTEND: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0
"""
#: KEYS[1] lease key; ARGV[1] replica id. Deletes the lease only if it is ours.
_RELEASE: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""
_ERRORS: Final = (RedisError, OSError, asyncio.TimeoutError)


class Role(StrEnum):
    LEADER = "leader"  # holds the lease: polls upstream for the fleet
    FOLLOWER = "follower"  # another replica holds it: receives the feed through the broker
    ALONE = "alone"  # Redis unreachable: polls upstream for its own sockets


class FeedElection:
    """Holds or watches the feed lease and advertises this replica's topics.

    `local_topics` returns the topics this replica's sockets subscribe to right now.
    """

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        replica_id: str,
        local_topics: Callable[[], Iterable[str]],
        stats: WebSocketStats,
        *,
        lease_ttl: float,
    ) -> None:
        if lease_ttl <= 0:
            raise ValueError("lease_ttl must be > 0 seconds")
        self.redis = redis
        self.replica_id = replica_id
        self.lease_key = f"{prefix}:ws:feed-lease"
        self.replicas_key = f"{prefix}:ws:replicas"
        self.topics_prefix = f"{prefix}:ws:topics:"
        self.lease_ttl = lease_ttl
        self.interval = lease_ttl / 3
        self.stats = stats
        self._local_topics = local_topics
        self._ttl_ms = max(1, round(lease_ttl * 1000))
        self._task: asyncio.Task[None] | None = None
        self._warn = RateLimitedLogger(log)
        self.role = Role.ALONE
        self.stats.feed_publisher = True

    @property
    def is_publisher(self) -> bool:
        return self.role is not Role.FOLLOWER

    def _set_role(self, role: Role) -> None:
        if role is not self.role:
            log.info("market feed: this replica is now %s (was %s)", role, self.role)
        self.role = role
        self.stats.feed_publisher = role is not Role.FOLLOWER

    # ------------------------------------------------------------------ one renewal
    async def step(self) -> Role:
        """Advertise this replica's topics and take, keep or watch the lease, in one round trip;
        Redis unreachable or slower than a renewal period makes this replica `alone`."""
        topics = orjson.dumps(sorted(self._local_topics()))
        try:
            async with asyncio.timeout(self.interval):
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.set(self.topics_prefix + self.replica_id, topics, px=self._ttl_ms)
                    pipe.zadd(self.replicas_key, {self.replica_id: 0})
                    pipe.set(self.lease_key, self.replica_id, nx=True, px=self._ttl_ms)
                    pipe.eval(_EXTEND, 1, self.lease_key, self.replica_id, self._ttl_ms)
                    *_, ours = await pipe.execute()
        except _ERRORS as exc:
            self._warn.warning(
                "step",
                "feed lease: Redis unreachable (%r); this replica publishes for its own sockets",
                exc,
            )
            self._set_role(Role.ALONE)
            return self.role
        self._set_role(Role.LEADER if ours == 1 else Role.FOLLOWER)
        return self.role

    async def topics_by_replica(self) -> Mapping[str, frozenset[str]]:
        """The topics each live replica advertises, this one's read directly; this replica's
        alone when Redis cannot be reached."""
        local = frozenset(self._local_topics())
        try:
            async with asyncio.timeout(self.interval):
                ids = [_text(raw) for raw in await self.redis.zrange(self.replicas_key, 0, -1)]
                others = [i for i in ids if i != self.replica_id]
                values = (
                    await self.redis.mget([self.topics_prefix + i for i in others])
                    if others
                    else []
                )
                gone = [i for i, v in zip(others, values, strict=True) if v is None]
                if gone:
                    await self.redis.zrem(self.replicas_key, *gone)
        except _ERRORS as exc:
            self._warn.warning("topics", "feed: cannot read other replicas' topics (%r)", exc)
            return {self.replica_id: local}
        found = {self.replica_id: local}
        for replica, value in zip(others, values, strict=True):
            if value is not None:
                found[replica] = frozenset(_topic_list(value))
        return found

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        """Take part in the election at once (the first feed round knows its role), then keep
        renewing every third of the TTL."""
        await self.step()
        self._task = asyncio.create_task(
            supervise("feed lease", self._renew_forever, Backoff(0.1, self.interval)),
            name="ws-feed-lease",
        )

    async def _renew_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            await self.step()
            await asyncio.sleep(max(0.0, self.interval - (loop.time() - started)))

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def close(self) -> None:
        """Stop renewing and hand the lease over: delete it if it is ours, and withdraw this
        replica's topics (best effort: Redis may be gone)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        try:
            async with asyncio.timeout(self.interval):
                async with self.redis.pipeline(transaction=False) as pipe:
                    pipe.eval(_RELEASE, 1, self.lease_key, self.replica_id)
                    pipe.delete(self.topics_prefix + self.replica_id)
                    pipe.zrem(self.replicas_key, self.replica_id)
                    await pipe.execute()
        except _ERRORS as exc:
            log.info("feed lease not released (%r); it expires by itself", exc)
        self._set_role(Role.ALONE)


def _text(raw: object) -> str:
    return raw.decode() if isinstance(raw, bytes) else str(raw)


def _topic_list(raw: bytes | str) -> list[str]:
    """Topics advertised by another replica; anything that is not a list of strings is none."""
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return []
    if not isinstance(value, list):
        return []
    return [t for t in value if isinstance(t, str)]
