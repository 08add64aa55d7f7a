"""The app's telemetry when there is none: its hooks are the parts' no-ops, its views say so."""

from __future__ import annotations

from app.main import create_app
from app.observability import DisabledTelemetry
from tests.conftest import make_settings
from tests.support.app_client import running_app

DISABLED = {"error": "telemetry_disabled", "detail": "telemetry is off (OTEL_SDK_DISABLED=true)"}


async def test_views_of_missing_instruments_answer_503_with_the_reason() -> None:
    async with running_app(create_app(make_settings(), telemetry=None)) as (client, services):
        assert isinstance(services.telemetry, DisabledTelemetry)
        for path in ("metrics/api", "bottlenecks"):
            response = await client.get(f"/api/monitoring/performance/{path}")
            assert (response.status_code, response.json()) == (503, DISABLED)
            assert response.headers["content-type"] == "application/json"
        summary = (await client.get("/api/monitoring/performance/summary")).json()
        assert summary["system"] == {"telemetry": "disabled"}
        assert summary["cache"]["backend"] == "memory"
