"""Health follows the real upstream: the simulator served over HTTP goes away and comes back."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.main import create_app
from app.services import Services
from tests.conftest import make_settings
from tests.support.app_client import running_app
from tests.support.exchange_server import ExchangeServer

pytestmark = pytest.mark.server
HEALTH = "/api/monitoring/performance/health"


async def fresh_ticker(client: httpx.AsyncClient, services: Services) -> httpx.Response:
    """A ticker read that must reach the upstream (the cached snapshot is invalidated first)."""
    await services.cache.invalidate("market")
    return await client.get("/api/market/tickers/BTCUSDT")


async def upstream_health(client: httpx.AsyncClient) -> tuple[str, dict[str, Any]]:
    response = await client.get(HEALTH)
    assert response.status_code == 200  # health itself answers whatever the upstream does
    body = response.json()
    return body["status"], body["components"]["upstream"]


async def test_health_is_degraded_while_the_exchange_is_down_and_ok_when_it_returns() -> None:
    exchange = ExchangeServer().start()
    try:
        settings = make_settings(upstream_url=exchange.url, upstream_timeout=1.0)
        async with running_app(create_app(settings, telemetry=None)) as (client, services):
            assert (await fresh_ticker(client, services)).status_code == 200
            status, upstream = await upstream_health(client)
            assert (status, upstream["status"]) == ("ok", "ok")
            assert upstream["last_success"] is not None

            exchange.stop()
            response = await fresh_ticker(client, services)
            assert response.status_code == 503
            status, upstream = await upstream_health(client)
            assert (status, upstream["status"]) == ("degraded", "degraded")
            assert upstream["consecutive_failures"] == 1
            assert upstream["recent_failures"] == 1
            assert "connection failed" in upstream["last_failure"]["reason"]
            assert upstream["last_success"]["seconds_ago"] >= 0

            exchange.start()
            assert (await fresh_ticker(client, services)).status_code == 200
            status, upstream = await upstream_health(client)
            assert (status, upstream["status"]) == ("ok", "ok")
            assert upstream["consecutive_failures"] == 0
            assert upstream["recent_failures"] == 1
            assert upstream["last_success"]["seconds_ago"] < upstream["last_failure"]["seconds_ago"]
    finally:
        exchange.stop()
