"""The live market feed: one upstream read per tick, fanned out to every subscriber.

Only topics somebody subscribed to are published, so sixty tickers nobody watches cost nothing,
and a snapshot equal to the one last sent on its topic is skipped (the cached ticker map changes
only when its TTL runs out). Reads go through the market service, hence through the cache: the
feed and the REST API share one upstream snapshot. A failed tick (exchange down, ...) is counted,
logged at most once a minute, and retried on the next tick; it never ends the feed.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Mapping
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


class MarketFeed:
    def __init__(self, target: FeedTarget, market: MarketSource, interval: float) -> None:
        if interval <= 0:
            raise ValueError("interval must be > 0 seconds")
        self.target = target
        self.market = market
        self.interval = interval
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
        topics = self.target.active_topics()
        if not topics:
            return 0
        published = 0
        symbols = [s for s in map(ticker_symbol, topics) if s is not None]
        if symbols:
            tickers = await self.market.ticker_map()
            for symbol in symbols:
                row = tickers.get(symbol)
                if row is not None:
                    published += self._publish(TICKERS_PREFIX + symbol, row)
        if MOVERS in topics:
            published += self._publish(MOVERS, await self.market.movers(MOVERS_LIMIT))
        if OVERVIEW in topics:
            published += self._publish(OVERVIEW, await self.market.overview())
        return published

    def _publish(self, topic: str, data: Mapping[str, Any]) -> int:
        if self.target.latest(topic) == data:
            return 0
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
