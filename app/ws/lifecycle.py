"""Start the WebSocket layer inside the app's lifespan and register its teardown."""

from __future__ import annotations

from contextlib import AsyncExitStack

from app.market.service import MarketService
from app.settings import Settings
from app.ws.config import WebSocketConfig
from app.ws.feed import MarketFeed
from app.ws.instrumentation import WebSocketInstrumentation
from app.ws.manager import WebSocketManager
from app.ws.topics import TopicCatalog


async def start_realtime(
    stack: AsyncExitStack,
    settings: Settings,
    market: MarketService,
    instrumentation: WebSocketInstrumentation | None = None,
) -> WebSocketManager:
    """Build the manager and the market feed, started; teardown goes on `stack`.

    The exit stack unwinds in reverse: the feed stops first (no more broadcasts), then every
    socket is closed with 1001, and only then do the callbacks pushed before this call (cache,
    upstream) run, so nothing the sessions still use is closed under them.
    """
    manager = WebSocketManager(
        WebSocketConfig.from_settings(settings),
        TopicCatalog(market.ticker_map),
        instrumentation=instrumentation,
    )
    await manager.start()
    stack.push_async_callback(manager.close)
    feed = MarketFeed(manager.registry, market, settings.ws_feed_interval)
    feed.start()
    stack.push_async_callback(feed.stop)
    return manager
