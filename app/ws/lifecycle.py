"""Start the WebSocket layer inside the app's lifespan and register its teardown."""

from __future__ import annotations

from contextlib import AsyncExitStack

from redis.asyncio import Redis

from app.market.service import MarketService
from app.settings import Settings
from app.ws.config import WebSocketConfig
from app.ws.feed import MarketFeed
from app.ws.fleet import Fleet
from app.ws.instrumentation import WebSocketInstrumentation
from app.ws.manager import WebSocketManager
from app.ws.topics import TopicCatalog


async def start_realtime(
    stack: AsyncExitStack,
    settings: Settings,
    market: MarketService,
    instrumentation: WebSocketInstrumentation | None = None,
    *,
    redis: Redis | None = None,
) -> WebSocketManager:
    """Build the manager and the market feed, started; teardown goes on `stack`.

    With `redis` (REDIS_URL set), the replica joins the fleet: its broadcasts are relayed to the
    other replicas and theirs delivered here, and the feed polls only while this replica is the
    elected publisher (or cannot reach Redis).

    The exit stack unwinds in reverse: the feed stops first (no more broadcasts), then the fleet
    hands its lease over, then every socket is closed with 1001, and only then do the callbacks
    pushed before this call (cache, upstream, the Redis client) run, so nothing the sessions
    still use is closed under them.
    """
    manager = WebSocketManager(
        WebSocketConfig.from_settings(settings),
        TopicCatalog(market.ticker_map),
        instrumentation=instrumentation,
    )
    await manager.start()
    stack.push_async_callback(manager.close)
    if redis is None:
        feed = MarketFeed(manager.registry, market, settings.ws_feed_interval)
    else:
        fleet = Fleet(
            redis, manager, prefix=settings.fleet_key_prefix, lease_ttl=settings.fleet_lease_ttl
        )
        await fleet.start()
        stack.push_async_callback(fleet.close)
        feed = MarketFeed(manager, market, settings.ws_feed_interval, fleet=fleet.election)
    feed.start()
    stack.push_async_callback(feed.stop)
    return manager
