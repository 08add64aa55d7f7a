from __future__ import annotations

import pytest

from app.main import create_app
from app.upstream.health import HealthTrackedExchange
from tests.conftest import make_settings
from tests.support.app_client import running_app


async def test_otel_sdk_disabled_turns_everything_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    async with running_app(create_app(make_settings())) as (client, services):
        assert services.telemetry is None
        assert (await client.get("/api/market/movers")).status_code == 200
        response = await client.get("/metrics")
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"
        assert type(services.cache.instrumentation).__name__ == "NoopCacheInstrumentation"
        # Only the health tracker wraps the simulator: no telemetry wrapper.
        assert isinstance(services.upstream, HealthTrackedExchange)
        assert type(services.upstream.inner).__name__ == "ExchangeSimulator"
