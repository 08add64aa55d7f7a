"""Several replicas as one service: the Redis client, the broker and the feed election together.

Built only when `REDIS_URL` is set. The client fails fast (one-second connect timeout, no
retries inside redis-py): the broker and the election have their own bounded backoff, and a
command that waited through redis-py's retries would hold a renewal past its lease. A replica
starts whether or not Redis answers: until it does, the replica is alone.
"""

from __future__ import annotations

import os
import socket
import uuid
from typing import Any, Final

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.ws.broker import RedisBroker
from app.ws.election import FeedElection
from app.ws.manager import WebSocketManager
from app.ws.stats import NO_FAMILY, TOPIC_FAMILIES

#: Seconds to open a connection to Redis, and to wait for any reply on it.
CONNECT_TIMEOUT: Final = 1.0
COMMAND_TIMEOUT: Final = 2.0
#: Connections at most: the subscription, the sender, the election and the feed's topic read.
MAX_CONNECTIONS: Final = 8
#: Seconds a connection may stay silent before it is checked with a PING: the subscription only
#: ever reads, and without this a peer that vanished without a FIN would never be noticed.
HEALTH_CHECK_INTERVAL: Final = 5.0


def fleet_redis(url: str) -> Redis:
    """The fleet's Redis client (connects lazily: building it never fails on a down Redis)."""
    return Redis.from_url(
        url,
        socket_connect_timeout=CONNECT_TIMEOUT,
        socket_timeout=COMMAND_TIMEOUT,
        retry=Retry(NoBackoff(), 0),
        max_connections=MAX_CONNECTIONS,
        health_check_interval=HEALTH_CHECK_INTERVAL,
    )


def new_replica_id() -> str:
    """Unique in the fleet, and readable in Redis: host, process, and a random part."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Fleet:
    """This replica's membership: relays its broadcasts, receives the others', takes part in
    the feed election. `start` wires it into `manager`; `close` unwires it."""

    def __init__(
        self,
        redis: Redis,
        manager: WebSocketManager,
        *,
        prefix: str,
        lease_ttl: float,
        replica_id: str | None = None,
    ) -> None:
        self.replica_id = replica_id or new_replica_id()
        self.manager = manager
        self.broker = RedisBroker(
            redis, f"{prefix}:ws:broadcast", self.replica_id, manager.deliver, manager.stats
        )
        self.election = FeedElection(
            redis,
            prefix,
            self.replica_id,
            manager.active_topics,
            manager.stats,
            lease_ttl=lease_ttl,
        )

    async def start(self) -> None:
        self.manager.relay_to(self.broker.publish)
        self.manager.fleet_status = self.status
        self.broker.start()
        await self.election.start()

    async def close(self) -> None:
        self.manager.relay_to(None)
        await self.election.close()
        await self.broker.close()

    def status(self) -> dict[str, Any]:
        """The `fleet` part of the performance summary's `websocket` section."""
        stats = self.manager.stats
        families = (*TOPIC_FAMILIES, NO_FAMILY)
        return {
            "enabled": True,
            "replica": self.replica_id,
            "role": str(self.election.role),
            "publisher": self.election.is_publisher,
            "connected": stats.broker_connected,
            "reconnects": stats.broker_reconnects,
            "published": sum(stats.broker_published.values()),
            "received": sum(stats.broker_received.values()),
            "dropped": sum(stats.broker_dropped.values()),
            "queued": self.broker.queued,
            "by_family": {
                family: {
                    "published": stats.broker_published[family],
                    "received": stats.broker_received[family],
                    "dropped": stats.broker_dropped[family],
                }
                for family in families
            },
        }
