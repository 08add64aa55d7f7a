from __future__ import annotations

import pytest

from app.main import create_app
from telemetry.thresholds import THRESHOLDS
from tests.conftest import make_settings
from tests.support.app_client import running_app
from tests.telemetry.conftest import traced_app


async def test_summary_has_every_section_from_the_instruments() -> None:
    async with traced_app() as t:
        for _ in range(4):
            await t.client.get("/api/market/movers")
        await t.client.get("/api/market/tickers/NOPE")
        summary = (await t.client.get("/api/monitoring/performance/summary")).json()
    assert {"cache", "api", "websocket", "system"} <= set(summary)
    movers = summary["api"]["routes"]["GET /api/market/movers"]
    assert movers["requests"] == 4
    assert movers["p95_ms"] is not None
    assert summary["api"]["routes"]["GET /api/market/tickers/{symbol}"]["client_errors"] == 1
    assert summary["system"]["rss_bytes"] > 0
    assert summary["cache"]["hits"] >= 3


async def test_metrics_api_and_bottlenecks() -> None:
    async with traced_app() as t:
        await t.client.get("/api/dashboard/overview")
        api = (await t.client.get("/api/monitoring/performance/metrics/api")).json()
        report = (await t.client.get("/api/monitoring/performance/bottlenecks")).json()
    assert api["routes"]["GET /api/dashboard/overview"]["requests"] == 1
    assert [c["alert"] for c in report["checks"]] == [
        "MarketApiCacheHitRateLow",
        "MarketApiHighLatency",
        "MarketApiMemoryHigh",
        "MarketApiTooManyWebSockets",
        "MarketApiMemoryLeakSuspected",
        "MarketApiDown",
    ]
    by_alert = {c["alert"]: c for c in report["checks"]}
    for threshold in THRESHOLDS:
        check = by_alert[threshold.alert]
        assert check["threshold"] == threshold.value
        assert check["severity"] == str(threshold.severity)
        assert check["runbook_url"] == f"http://test/runbooks#{threshold.runbook_anchor}"
    assert by_alert["MarketApiMemoryHigh"]["value"] > 0
    assert report["breached"] == [c["alert"] for c in report["checks"] if c["breached"]]
    assert report["firing"] == [c["alert"] for c in report["checks"] if c["state"] == "firing"]
    assert report["pending"] == [c["alert"] for c in report["checks"] if c["state"] == "pending"]
    # Just started: no trend is judged and nothing has held for any `for:`.
    assert "MarketApiMemoryLeakSuspected" not in report["breached"]
    assert report["firing"] == []
    assert by_alert["MarketApiMemoryLeakSuspected"]["for_seconds"] == 900


async def test_performance_redirects_to_grafana() -> None:
    settings = make_settings(grafana_dashboard_url="http://grafana.example:3000/d/x/market-api")
    async with running_app(create_app(settings)) as (client, _):
        response = await client.get("/performance", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == "http://grafana.example:3000/d/x/market-api"


async def test_views_answer_503_when_telemetry_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    async with running_app(create_app(make_settings())) as (client, _):
        for path in ["metrics/api", "bottlenecks"]:
            response = await client.get(f"/api/monitoring/performance/{path}")
            assert response.status_code == 503
            assert response.json()["error"] == "telemetry_disabled"
        summary = (await client.get("/api/monitoring/performance/summary")).json()
        assert summary["api"] == {"telemetry": "disabled"}


async def test_performance_redirects_to_the_overview_dashboard_by_default() -> None:
    async with running_app(create_app(make_settings())) as (client, _):
        response = await client.get("/performance", follow_redirects=False)
    assert response.status_code == 307
    assert response.headers["location"] == (
        "http://127.0.0.1:3000/d/market-api/market-api-overview"
    )
