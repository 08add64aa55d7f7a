"""The ASGI application: `app.main:app`, built by `create_app(settings)`.

Everything stateful is created in the lifespan and reached through dependencies, so a test can
build a second, independent app in the same process.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Literal

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline

from app import __version__
from app.alerting import AlertHistory
from app.alerting.live import broadcast_to
from app.api import admin, alerts, market, monitoring, performance, runbooks, websocket
from app.api.response_cache import ResponseCache, ResponseCacheMiddleware
from app.cache import build_cache_breaker, build_cache_manager
from app.errors import install_error_handlers
from app.faults import FaultInjector
from app.market.service import MarketService
from app.observability import AppTelemetry, DisabledTelemetry
from app.services import Services
from app.settings import Settings
from app.upstream.client import ExchangeClient
from app.upstream.factory import build_exchange_client
from app.upstream.health import HealthTrackedExchange, UpstreamHealth
from app.ws.fleet import fleet_redis
from app.ws.lifecycle import start_realtime
from telemetry.http import TelemetryMiddleware, TraceRootMiddleware
from telemetry.runtime import Telemetry
from telemetry.setup import prometheus_endpoint, telemetry_from_environment


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


def instrument_routing(app: FastAPI, telemetry: Telemetry) -> None:
    """The layer that opens a request's trace root; added before the response cache, so it
    runs inside it and a request answered before routing never pays for a root."""
    app.add_middleware(TraceRootMiddleware, roots=telemetry.roots)


def instrument_http(app: FastAPI, telemetry: Telemetry) -> None:
    """The request middleware, recording into `telemetry`'s roots, request histogram and
    in-flight counter, and the `/metrics` scrape endpoint; added after the response cache,
    so it runs outside it and served hits are measured."""
    app.add_middleware(
        TelemetryMiddleware,
        roots=telemetry.roots,
        http_duration=telemetry.instruments.http_duration,
        active=telemetry.active_requests,
    )
    app.add_api_route("/metrics", prometheus_endpoint(telemetry), include_in_schema=False)


def create_app(
    settings: Settings | None = None,
    *,
    upstream: ExchangeClient | None = None,
    telemetry: Telemetry | Literal["environment"] | None = "environment",
) -> FastAPI:
    """Build the app.

    `upstream` replaces the configured exchange client and `telemetry` the pipeline built from
    the environment (`"environment"`, the default), for tests and benchmarks. None means no
    telemetry at all, as `OTEL_SDK_DISABLED=true` does: the app gets `DisabledTelemetry`.
    """
    settings = settings or Settings()
    pipeline = (
        telemetry_from_environment(
            __version__,
            keep_slower_than_ms=settings.trace_keep_slower_than_ms,
            keep_ratio=settings.trace_keep_ratio,
            loop_lag_interval=settings.event_loop_lag_interval,
            listen=(settings.app_host, settings.app_port),
        )
        if telemetry == "environment"
        else telemetry
    )
    # The one place that knows whether there is a pipeline: the parts and the routes get an
    # AppTelemetry either way.
    hooks: AppTelemetry = DisabledTelemetry() if pipeline is None else pipeline

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            hooks.start()
            stack.push_async_callback(hooks.shutdown)

            exchange = upstream or build_exchange_client(settings)
            stack.push_async_callback(exchange.close)
            faults = FaultInjector() if settings.enable_fault_injection else None
            if faults is not None:
                # Inside the telemetry wrapper, so upstream spans include the injected latency.
                exchange = faults.wrap_upstream(exchange)
                stack.push_async_callback(faults.close)
            # Outside the faults, so health sees injected failures as callers do.
            upstream_health = UpstreamHealth()
            exchange = HealthTrackedExchange(exchange, upstream_health)
            exchange = hooks.instrument_upstream(exchange)

            breaker = build_cache_breaker(settings)
            cache = build_cache_manager(
                settings, hooks.cache_instrumentation(breaker), breaker=breaker
            )
            hooks.observe_cache(cache)
            await cache.start()
            stack.push_async_callback(cache.close)
            if faults is not None:
                faults.bind_cache(cache)

            market_service = MarketService(exchange, cache)
            # Several replicas share broadcasts and one market feed through Redis; none without.
            redis = fleet_redis(settings.redis_url) if settings.redis_url else None
            if redis is not None:
                stack.push_async_callback(redis.aclose)
            # After the cache and upstream: its teardown (sockets closed with 1001) runs first.
            ws = await start_realtime(
                stack, settings, market_service, hooks.websocket_instrumentation(), redis=redis
            )
            hooks.observe_websockets(ws.stats)
            services = Services(
                settings=settings,
                cache=cache,
                upstream=exchange,
                upstream_health=upstream_health,
                market=market_service,
                telemetry=hooks,
                ws=ws,
                alerts=AlertHistory(
                    settings.alert_history_size,
                    on_notification=broadcast_to(ws),
                    max_bytes=settings.alert_history_max_bytes,
                    max_entry_bytes=settings.alert_notification_max_bytes,
                ),
                faults=faults,
            )
            app.state.services = services
            alerts.warn_if_open(settings)

            tune_garbage_collector(settings)
            yield
            # Teardown runs in reverse order of the callbacks pushed above.

    # Swagger UI and ReDoc from assets the app serves itself (fastapi-offline ships them): the
    # docs work on a machine with no route to a public CDN.
    app = FastAPIOffline(
        title="Market API",
        version=__version__,
        description="Market data for trading dashboards over REST and WebSocket.",
        lifespan=lifespan,
        # FastAPI's own OpenTelemetry support would trace through the global providers; this
        # app's pipeline (telemetry/) is per app and decides traces at the end of each request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    install_error_handlers(app)
    # Middleware added first runs innermost: trace roots, then the response cache, then the
    # request telemetry around both, so served hits are measured but never open a root.
    if pipeline is not None:  # no middleware and no /metrics without a pipeline
        instrument_routing(app, pipeline)
    app.state.responses = ResponseCache()
    app.add_middleware(ResponseCacheMiddleware, responses=app.state.responses)
    if pipeline is not None:
        instrument_http(app, pipeline)
    app.include_router(market.router)
    app.include_router(monitoring.router)
    app.include_router(performance.router)
    app.include_router(runbooks.router)
    app.include_router(websocket.router)
    app.include_router(alerts.router)
    if settings.enable_fault_injection:
        app.include_router(admin.router)
    return app


app = create_app()
