"""The contenders of `bench.http_floor` that are not this service, as uvicorn app factories.

- `bench.floor_apps:bare`: the framework floor, a FastAPI route returning precomputed bytes (the
  file named by `FLOOR_BODY_FILE`: the service's own answer, so both send the same bytes).
- `bench.floor_apps:fastapi_cache`: the same market-movers answer behind fastapi-cache2's
  `@cache` decorator, the usual way to cache a FastAPI route; its backend is in-memory or, with
  `FLOOR_MEMCACHED=host:port`, memcached through aiomcache. It needs the `bench` extra.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Query
from fastapi.responses import Response

from app.market import analytics
from app.upstream.simulator import ExchangeSimulator

ROUTE = "/api/market/movers"


def bare() -> FastAPI:
    body_file = os.environ.get("FLOOR_BODY_FILE")
    body = Path(body_file).read_bytes() if body_file else b"{}"
    app = FastAPI()

    @app.get(ROUTE)
    async def movers() -> Response:
        return Response(body, media_type="application/json")

    return app


def fastapi_cache() -> FastAPI:
    from fastapi_cache import FastAPICache
    from fastapi_cache.decorator import cache

    simulator = ExchangeSimulator()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        memcached = os.environ.get("FLOOR_MEMCACHED")
        if memcached:
            import aiomcache
            from fastapi_cache.backends.memcached import MemcachedBackend

            host, _, port = memcached.rpartition(":")
            client = aiomcache.Client(host, int(port))
            FastAPICache.init(MemcachedBackend(client), prefix="floor")
            yield
            await client.close()
        else:
            from fastapi_cache.backends.inmemory import InMemoryBackend

            FastAPICache.init(InMemoryBackend(), prefix="floor")
            yield

    app = FastAPI(lifespan=lifespan)

    @app.get(ROUTE)
    @cache(expire=2)  # type: ignore[untyped-decorator, unused-ignore]  # typed when installed
    async def movers(limit: int = Query(10, ge=1, le=50)) -> dict[str, Any]:
        rows = [t.model_dump() for t in await simulator.tickers()]
        return analytics.movers(rows, limit).model_dump()

    return app
