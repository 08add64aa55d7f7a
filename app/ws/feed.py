"""The live market feed: one upstream read per tick, fanned out to every subscriber.

Only topics somebody subscribed to are published, so sixty tickers nobody watches cost nothing,
and a snapshot equal to the one last sent on its topic is skipped (the cached ticker map changes
only when its TTL runs out). Reads go through the market service, hence through the cache: the
feed and the REST API share one upstream snapshot. A failed tick (exchange down, ...) is counted,
logged at most once a minute, and retried on the next tick; it never ends the feed.

With several replicas (`fleet`), only the replica the fleet elected polls upstream, once per
round, for the topics subscribed on any replica (`FeedFleet.topics_by_replica`), and its
broadcasts reach the other replicas through the broker; the others skip their rounds. A replica
that cannot reach Redis publishes for its own sockets only (`Role.ALONE`). Unchanged
snapshots are skipped by comparing with what this feed itself sent last on the topic (most of
the fleet's subscribers are not local), except on a topic that some replica advertises for the
first time: its new subscribers have nothing yet, so it is sent whatever it holds. Whenever its
role changes, the feed forgets what it sent: a replica that takes over sends every snapshot once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Collection, Mapping
from typing import Any, Final, Protocol

from app.ratelimit_log import RateLimitedLogger
from app.ws.election import Role
from app.ws.stats import WebSocketStats
from app.ws.topics import MOVERS, OVERVIEW, TICKERS_PREFIX, ticker_symbol

log = logging.getLogger(__name__)

#: Entries per side of `market.movers`: the REST endpoint's default.
MOVERS_LIMIT: Final = 10


class MarketSource(Protocol):
    def ticker_map(self) -> Awaitable[Mapping[str, Mapping[str, Any]]]: ...

    def movers(self, limit: int) -> Awaitable[Mapping[str, Any]]: ...

    def overview(self) -> Awaitable[Mapping[str, Any]]: ...


class FeedTarget(Protocol):
    @property
    def stats(self) -> WebSocketStats: ...

    def active_topics(self) -> tuple[str, ...]: ...

    def latest(self, topic: str) -> Any: ...

    def broadcast(self, topic: str, data: Any) -> int: ...

    def deliver(self, topic: str, data: Any) -> int:
        """Like `broadcast`, to this replica's sockets only."""


class FeedFleet(Protocol):
    """The replicas' view the feed needs (`app.ws.election.FeedElection`)."""

    @property
    def role(self) -> Role:
        """Leader: publish for the fleet; alone (Redis unreachable): for this replica's sockets
        only; follower: another replica publishes."""

    def topics_by_replica(self) -> Awaitable[Mapping[str, frozenset[str]]]:
        """Topics subscribed on each live replica, this one included."""


class MarketFeed:
    def __init__(
        self,
        target: FeedTarget,
        market: MarketSource,
        interval: float,
        *,
        fleet: FeedFleet | None = None,
    ) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0 seconds")
        self.target = target
        self.market = market
        self.interval = interval
        self.fleet = fleet
        #: With a fleet: the data last sent per topic, and the topics each replica advertised
        #: at the previous round (to tell which ones are new somewhere).
        self._sent: dict[str, Any] = {}
        self._seen: Mapping[str, frozenset[str]] = {}
        self._role: Role | None = None
        self._task: asyncio.Task[None] | None = None
        self._warn = RateLimitedLogger(log)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ws-market-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.wait([self._task])
            self._task = None

    async def tick(self) -> int:
        """Publish what changed on subscribed market topics; returns the topics published."""
        if self.fleet is None:
            topics: Collection[str] = self.target.active_topics()
            fresh: Collection[str] = ()
        else:
            role = self.fleet.role
            if role is not self._role:  # a new role starts from nothing sent
                self._role = role
                self._sent.clear()
                self._seen = {}
            if role is Role.FOLLOWER:
                return 0
            by_replica = (
                await self.fleet.topics_by_replica()
                if role is Role.LEADER
                else {"": frozenset(self.target.active_topics())}
            )
            topics, fresh = self._compare(by_replica)
        if not topics:
            return 0
        self.target.stats.feed_polls += 1
        published = 0
        symbols = [s for s in map(ticker_symbol, topics) if s is not None]
        if symbols:
            tickers = await self.market.ticker_map()
            for symbol in symbols:
                row = tickers.get(symbol)
                if row is not None:
                    topic = TICKERS_PREFIX + symbol
                    published += self._publish(topic, row, topic in fresh)
        if MOVERS in topics:
            movers = await self.market.movers(MOVERS_LIMIT)
            published += self._publish(MOVERS, movers, MOVERS in fresh)
        if OVERVIEW in topics:
            published += self._publish(OVERVIEW, await self.market.overview(), OVERVIEW in fresh)
        return published

    def _compare(
        self, by_replica: Mapping[str, frozenset[str]]
    ) -> tuple[frozenset[str], frozenset[str]]:
        """Every topic subscribed somewhere, and those some replica did not have last round."""
        fresh: set[str] = set()
        for replica, topics in by_replica.items():
            fresh |= topics - self._seen.get(replica, frozenset())
        self._seen = by_replica
        union = frozenset().union(*by_replica.values())
        for topic in [t for t in self._sent if t not in union]:
            del self._sent[topic]
        return union, frozenset(fresh)

    def _publish(self, topic: str, data: Mapping[str, Any], fresh: bool) -> int:
        if self.fleet is None:
            if self.target.latest(topic) == data:
                return 0
            self.target.broadcast(topic, data)
            return 1
        if not fresh and self._sent.get(topic) == data:
            return 0
        self._sent[topic] = data
        if self._role is Role.LEADER:
            self.target.broadcast(topic, data)  # here and, through the broker, everywhere
        else:
            self.target.deliver(topic, data)  # alone: not meant for the other replicas
        return 1

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stats = self.target.stats
        while True:
            started = loop.time()
            try:
                await self.tick()
            except Exception as exc:
                stats.feed_errors += 1
                self._warn.warning(
                    f"tick:{type(exc).__name__}",
                    "market feed tick failed (%s); retrying every %.2f s",
                    exc,
                    self.interval,
                )
            stats.feed_ticks += 1
            await asyncio.sleep(max(0.0, self.interval - (loop.time() - started)))
