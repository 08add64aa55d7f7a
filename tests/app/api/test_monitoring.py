from __future__ import annotations

import pytest

from app.main import create_app
from devstack.process import ManagedProcess
from tests.conftest import make_settings
from tests.support.app_client import running_app


async def test_cache_metrics_in_memory_mode() -> None:
    async with running_app(create_app(make_settings())) as (client, _):
        for _ in range(3):
            await client.get("/api/market/movers")
        body = (await client.get("/api/monitoring/performance/metrics/cache")).json()
    for field in ["hits", "misses", "hit_rate", "errors", "fallbacks", "breaker_state", "backend"]:
        assert field in body
    assert body["backend"] == "memory"
    assert body["breaker_state"] == "closed"
    assert body["upstream_calls"] == 1
    assert body["namespaces"]["api"] == {"hits": 2, "misses": 1, "sets": 1, "deletes": 0}
    assert body["namespaces"]["market"]["misses"] == 1
    assert body["hit_rate"] == pytest.approx(body["hits"] / (body["hits"] + body["misses"]), 1e-3)


async def test_health_without_memcached_is_ok() -> None:
    async with running_app(create_app(make_settings())) as (client, _):
        response = await client.get("/api/monitoring/performance/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["components"]["cache"]["memcached"] is None


@pytest.mark.memcached
async def test_health_with_memcached(memcached: ManagedProcess) -> None:
    settings = make_settings(memcached_servers=memcached.address)
    async with running_app(create_app(settings)) as (client, _):
        await client.get("/api/market/movers")
        body = (await client.get("/api/monitoring/performance/health")).json()
        metrics = (await client.get("/api/monitoring/performance/metrics/cache")).json()
    assert body["status"] == "ok"
    assert body["components"]["cache"]["memcached"]["reachable"] is True
    assert metrics["backend"] == "memcached"


def test_one_router_serves_every_monitoring_path() -> None:
    from fastapi.routing import APIRoute

    from app.api import monitoring

    prefix = "/api/monitoring/performance"
    app = create_app(make_settings(), telemetry=None)
    served = {path for path in app.openapi()["paths"] if path.startswith(prefix)}
    assert served == {r.path for r in monitoring.router.routes if isinstance(r, APIRoute)}
    assert served == {
        f"{prefix}/{path}"
        for path in ("summary", "metrics/cache", "health", "metrics/api", "bottlenecks")
    }
