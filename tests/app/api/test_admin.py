"""`/api/admin/faults`: absent unless enabled, validated, and each knob really applied."""

from __future__ import annotations

import time
from typing import Any

import pytest

from app.faults import FaultSettings
from app.main import create_app
from tests.conftest import make_settings
from tests.support.app_client import running_app
from tests.telemetry.conftest import traced_app

FAULTS = "/api/admin/faults"


def app_with_faults(enabled: bool = True, **overrides: Any) -> Any:
    settings = make_settings(gc_freeze=False, enable_fault_injection=enabled, **overrides)
    return create_app(settings, telemetry=None)


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
async def test_disabled_answers_like_an_unknown_path(method: str) -> None:
    async with running_app(app_with_faults(enabled=False)) as (client, services):
        answer = await client.request(method, FAULTS, json={})
        unknown = await client.request(method, "/api/admin/nothing-here", json={})
        schema = (await client.get("/openapi.json")).json()
    assert answer.status_code == unknown.status_code == 404
    assert answer.json() == unknown.json() == {"error": "not_found", "detail": "Not Found"}
    assert services.faults is None
    assert FAULTS not in schema["paths"]


async def test_get_put_delete_round_trip() -> None:
    async with running_app(app_with_faults()) as (client, services):
        initial = (await client.get(FAULTS)).json()
        wanted = {"upstream_latency_ms": 5, "force_cache_miss": True, "ballast_mb": 2}
        put = await client.put(FAULTS, json=wanted)
        current = (await client.get(FAULTS)).json()
        assert services.cache.force_miss is True
        deleted = await client.delete(FAULTS)
        assert services.cache.force_miss is False
    assert initial == {"faults": FaultSettings().model_dump(), "ballast_mb": 0, "leaking": False}
    assert put.status_code == 200
    assert put.json() == current
    assert current["faults"] == FaultSettings(**wanted).model_dump()
    assert current["ballast_mb"] == 2
    assert deleted.json() == initial


async def test_put_replaces_the_whole_document() -> None:
    async with running_app(app_with_faults()) as (client, _):
        await client.put(FAULTS, json={"force_cache_miss": True})
        second = (await client.put(FAULTS, json={"upstream_error_rate": 0.5})).json()
    assert second["faults"]["force_cache_miss"] is False
    assert second["faults"]["upstream_error_rate"] == 0.5


@pytest.mark.parametrize(
    "body",
    [
        {"upstream_latency_ms": 10_001},
        {"upstream_latency_ms": -1},
        {"upstream_error_rate": 1.5},
        {"ballast_mb": 2049},
        {"ballast_mb": 1.5},
        {"leak_mb_per_minute": 2000},
        {"leak_mb_per_minute": 1, "ballast_mb": 10, "leak_max_mb": 10},
        {"force_cache_miss": "sometimes"},
        {"upstream_latency": 100},
        [],
    ],
    ids=[
        "latency-high",
        "latency-negative",
        "error-rate",
        "ballast-cap",
        "ballast-fraction",
        "leak-rate",
        "leak-no-room",
        "not-a-bool",
        "unknown-knob",
        "not-an-object",
    ],
)
async def test_bad_input_is_422_and_changes_nothing(body: Any) -> None:
    async with running_app(app_with_faults()) as (client, _):
        await client.put(FAULTS, json={"upstream_latency_ms": 1})
        answer = await client.put(FAULTS, json=body)
        after = (await client.get(FAULTS)).json()
    assert answer.status_code == 422
    assert answer.json()["error"] == "invalid_request"
    assert after["faults"]["upstream_latency_ms"] == 1


async def test_forced_misses_send_every_request_upstream() -> None:
    async with running_app(app_with_faults()) as (client, services):
        for _ in range(3):
            (await client.get("/api/market/movers")).raise_for_status()
        calls = services.upstream.calls
        await client.put(FAULTS, json={"force_cache_miss": True})
        for _ in range(3):
            (await client.get("/api/market/movers")).raise_for_status()
        assert services.upstream.calls == calls + 3


async def test_upstream_faults_reach_the_routes() -> None:
    async with running_app(app_with_faults(market_ttl=1)) as (client, _):
        await client.put(FAULTS, json={"upstream_latency_ms": 200, "force_cache_miss": True})
        start = time.perf_counter()
        (await client.get("/api/market/movers")).raise_for_status()
        slow = time.perf_counter() - start
        await client.put(FAULTS, json={"upstream_error_rate": 1, "force_cache_miss": True})
        failing = await client.get("/api/market/movers")
    assert slow >= 0.19
    assert failing.status_code == 503
    assert failing.json()["error"] == "upstream_unavailable"


async def test_leak_is_stopped_and_memory_released_at_shutdown() -> None:
    async with running_app(app_with_faults()) as (client, services):
        put = await client.put(
            FAULTS, json={"ballast_mb": 4, "leak_mb_per_minute": 1, "leak_max_mb": 50}
        )
        injector = services.faults
        assert injector is not None
        assert put.json()["leaking"] is True
        task = injector._leak
    assert task is not None
    assert task.done()
    assert injector.ballast.size_mb == 0


async def test_upstream_spans_and_metrics_include_the_injected_latency() -> None:
    settings = make_settings(gc_freeze=False, enable_fault_injection=True)
    async with traced_app(settings) as traced:
        await traced.client.put(FAULTS, json={"upstream_latency_ms": 150})
        (await traced.client.get("/api/market/movers")).raise_for_status()
        [total] = [
            s
            for s in await traced.samples("upstream_request_duration_seconds_sum")
            if s.labels["upstream_endpoint"] == "/tickers"
        ]
        spans = traced.spans.named("upstream GET /tickers")
    assert total.value >= 0.15
    assert spans, "the slow request's trace is kept, upstream span included"
    [span] = spans
    assert span.end_time is not None
    assert span.start_time is not None
    assert span.end_time - span.start_time >= 150_000_000
