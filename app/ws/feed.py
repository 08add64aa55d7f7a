"""The live market feed: one upstream read per tick, fanned out to every subscriber.

Only topics somebody subscribed to are published, so sixty tickers nobody watches cost nothing,
and a snapshot equal to the one last sent on its topic is skipped (the cached ticker map changes
only when its TTL runs out). Reads go through the market service, hence through the cache: the
feed and the REST API share one upstream snapshot. A failed tick (exchange down, ...) is counted,
logged at most once a minute, and retried on the next tick; it never ends the feed.

With several replicas (`fleet`), only the replica the fleet elected polls upstream, once per
round, for the topics subscribed on any replica (`FeedFleet.topics_by_replica`), and its
broadcasts reach the other replicas through the broker; the others skip their rounds. Unchanged
snapshots are skipped by comparing with what this feed itself sent last on the topic (most of
the fleet's subscribers are not local), except on a topic that some replica advertises for the
first time: its new subscribers have nothing yet, so it is sent whatever it holds. A replica that
stops publishing forgets what it sent, so when it takes over again it sends every snapshot once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Collection, Mapping
from typing import Any, Final, Protocol

from app.ratelimit_log import RateLimitedLogger
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


class FeedFleet(Protocol):
    """The replicas' view the feed needs (`app.ws.election.FeedElection`)."""

    @property
    def is_publisher(self) -> bool:
        """Whether this replica's feed publishes now (for the fleet, or alone)."""

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
        elif not self.fleet.is_publisher:
            self._sent.clear()
            self._seen = {}
            return 0
        else:
            topics, fresh = await self._fleet_topics(self.fleet)
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

    async def _fleet_topics(self, fleet: FeedFleet) -> tuple[frozenset[str], frozenset[str]]:
        """Every topic subscribed somewhere, and those some replica did not have last round."""
        by_replica = await fleet.topics_by_replica()
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
        elif not fresh and self._sent.get(topic) == data:
            return 0
        else:
            self._sent[topic] = data
        self.target.broadcast(topic, data)
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
