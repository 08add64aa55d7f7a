"""The ASGI application: `app.main:app`, built by `create_app(settings)`.

Everything stateful is created in the lifespan and reached through dependencies, so a test can
build a second, independent app in the same process.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI

from app import __version__
from app.api import market, monitoring
from app.cache import build_cache_manager
from app.errors import install_error_handlers
from app.market.service import MarketService
from app.services import Services
from app.settings import Settings
from app.upstream.client import ExchangeClient
from app.upstream.factory import build_exchange_client


def create_app(
    settings: Settings | None = None, *, upstream: ExchangeClient | None = None
) -> FastAPI:
    """Build the app; `upstream` replaces the configured exchange client (tests, benchmarks)."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            exchange = upstream or build_exchange_client(settings)
            stack.push_async_callback(exchange.close)

            cache = build_cache_manager(settings)
            await cache.start()
            stack.push_async_callback(cache.close)

            services = Services(
                settings=settings,
                cache=cache,
                upstream=exchange,
                market=MarketService(exchange, cache),
            )
            app.state.services = services

            if settings.gc_freeze:
                gc.collect()
                gc.freeze()
            yield
            # Teardown runs in reverse order of the callbacks pushed above.

    app = FastAPI(
        title="Market API",
        version=__version__,
        description="Market data for trading dashboards over REST and WebSocket.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(market.router)
    app.include_router(monitoring.router)
    return app


app = create_app()
