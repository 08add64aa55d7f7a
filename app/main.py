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
from app.alerting import AlertHistory
from app.alerting.live import broadcast_to
from app.api import admin, alerts, market, monitoring, performance, websocket
from app.api.response_cache import ResponseCache, ResponseCacheMiddleware
from app.cache import build_cache_manager
from app.errors import install_error_handlers
from app.faults import FaultInjector
from app.market.service import MarketService
from app.services import Services
from app.settings import Settings
from app.upstream.client import ExchangeClient
from app.upstream.factory import build_exchange_client
from app.ws.lifecycle import start_realtime
from telemetry.runtime import Telemetry
from telemetry.setup import build_telemetry, instrument_app

_AUTO = object()


def tune_garbage_collector(settings: Settings) -> None:
    """Keep the garbage collector off the request path.

    Full collections of the start-up heap paused the event loop for 40-55 ms (`gc.freeze()`
    moves that heap out of reach); and with dozens of requests in flight, CPython's default
    first-generation threshold (700 objects) triggered a collection every few requests, each
    walking the objects those requests still held. Request objects are freed by reference
    counting long before a 10,000-object threshold is reached.
    """
    if settings.gc_freeze:
        gc.collect()
        gc.freeze()
    if settings.gc_gen0_threshold:
        _, gen1, gen2 = gc.get_threshold()
        gc.set_threshold(settings.gc_gen0_threshold, gen1, gen2)


def create_app(
    settings: Settings | None = None,
    *,
    upstream: ExchangeClient | None = None,
    telemetry: Telemetry | object | None = _AUTO,
) -> FastAPI:
    """Build the app.

    `upstream` replaces the configured exchange client and `telemetry` the pipeline built from
    the environment (None: no telemetry at all), for tests and benchmarks.
    """
    settings = settings or Settings()
    if telemetry is _AUTO:
        telemetry = build_telemetry(
            __version__,
            keep_slower_than_ms=settings.trace_keep_slower_than_ms,
            keep_ratio=settings.trace_keep_ratio,
            loop_lag_interval=settings.event_loop_lag_interval,
        )
    assert telemetry is None or isinstance(telemetry, Telemetry)
    pipeline = telemetry

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            if pipeline is not None:
                pipeline.start()
                stack.push_async_callback(pipeline.shutdown)

            exchange = upstream or build_exchange_client(settings)
            stack.push_async_callback(exchange.close)
            faults = FaultInjector() if settings.enable_fault_injection else None
            if faults is not None:
                # Inside the telemetry wrapper, so upstream spans include the injected latency.
                exchange = faults.wrap_upstream(exchange)
                stack.push_async_callback(faults.close)
            if pipeline is not None:
                exchange = pipeline.instrument_upstream(exchange)

            cache = build_cache_manager(
                settings, pipeline.cache_instrumentation() if pipeline is not None else None
            )
            if pipeline is not None:
                pipeline.observe_cache(cache)
            await cache.start()
            stack.push_async_callback(cache.close)
            if faults is not None:
                faults.bind_cache(cache)

            market_service = MarketService(exchange, cache)
            # After the cache and upstream: its teardown (sockets closed with 1001) runs first.
            ws = await start_realtime(
                stack,
                settings,
                market_service,
                pipeline.websocket_instrumentation() if pipeline is not None else None,
            )
            if pipeline is not None:
                pipeline.observe_websockets(ws.stats)
            services = Services(
                settings=settings,
                cache=cache,
                upstream=exchange,
                market=market_service,
                telemetry=pipeline,
                ws=ws,
                alerts=AlertHistory(settings.alert_history_size, on_notification=broadcast_to(ws)),
                faults=faults,
            )
            app.state.services = services

            tune_garbage_collector(settings)
            yield
            # Teardown runs in reverse order of the callbacks pushed above.

    app = FastAPI(
        title="Market API",
        version=__version__,
        description="Market data for trading dashboards over REST and WebSocket.",
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry support would trace through the global providers; this
        # app's pipeline (telemetry/) is per app and decides traces at the end of each request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    install_error_handlers(app)
    # Added before the telemetry middleware, so it runs inside it: served hits are measured.
    app.state.responses = ResponseCache()
    app.add_middleware(ResponseCacheMiddleware, responses=app.state.responses)
    if pipeline is not None:
        instrument_app(app, pipeline)
    app.include_router(market.router)
    app.include_router(monitoring.router)
    app.include_router(performance.router)
    app.include_router(websocket.router)
    app.include_router(alerts.router)
    if settings.enable_fault_injection:
        app.include_router(admin.router)
    return app


app = create_app()
