"""Requests answered in front of routing are measured, traced and counted like any other; the
in-process lookup behind them is counted, and named on the server span, but not timed."""

from __future__ import annotations

import pytest

from devstack.process import ManagedProcess
from tests.conftest import make_settings
from tests.telemetry.conftest import traced_app

ROUTE = "/api/market/tickers/{symbol}"


async def test_front_served_hits_keep_route_template_span_and_counts() -> None:
    async with traced_app() as t:
        for _ in range(3):
            assert (await t.client.get("/api/market/tickers/BTCUSDT")).status_code == 200
        etag = (await t.client.get("/api/market/tickers/BTCUSDT")).headers["etag"]
        revalidated = await t.client.get(
            "/api/market/tickers/BTCUSDT", headers={"If-None-Match": etag}
        )
        assert revalidated.status_code == 304
        roots = t.spans.named(f"GET {ROUTE}")
        assert len(roots) == 5
        last = roots[-1]
        assert last.context is not None
        assert dict(last.attributes or {})["http.response.status_code"] == 304
        # Served before routing: the in-process lookup is not a child span (one dict read,
        # not worth two clock reads); the server span says where the answer came from.
        assert [
            s.name
            for s in t.spans.spans
            if s.context is not None
            and s.context.trace_id == last.context.trace_id
            and s.name.startswith("cache.")
        ] == []
        attributes = dict(last.attributes or {})
        assert (attributes["cache.result"], attributes["cache.backend"]) == ("hit", "memory")
        first = dict(roots[0].attributes or {})
        assert "cache.result" not in first, "the first answer went through routing"
        counts = {
            (s.labels["http_route"], s.labels["http_response_status_code"]): s.value
            for s in await t.samples("http_server_request_duration_seconds_count")
        }
        assert counts[(ROUTE, "200")] == 4
        assert counts[(ROUTE, "304")] == 1
        requests = {
            (s.labels["cache_namespace"], s.labels["cache_result"], s.labels["cache_backend"]): (
                s.value
            )
            for s in await t.samples("cache_requests_total")
        }
        assert requests[("market", "miss", "memory")] == 1
        assert requests[("market", "hit", "memory")] == 4


async def test_slow_requests_served_in_front_are_still_kept() -> None:
    async with traced_app(keep_ratio=0.0, slower_than_ms=0.0) as t:
        await t.client.get("/api/dashboard/overview")
        await t.client.get("/api/dashboard/overview")
        (_, second) = t.spans.named("GET /api/dashboard/overview")
        assert dict(second.attributes or {})["sampling.keep_reason"] == "slow"


@pytest.mark.memcached
async def test_near_hits_are_labelled_near(memcached: ManagedProcess) -> None:
    settings = make_settings(memcached_servers=memcached.address)
    async with traced_app(settings) as t:
        for _ in range(4):
            assert (await t.client.get("/api/market/movers")).status_code == 200
        requests = {
            (s.labels["cache_namespace"], s.labels["cache_result"], s.labels["cache_backend"]): (
                s.value
            )
            for s in await t.samples("cache_requests_total")
        }
        # miss (load), then memcached answers and the copy is kept near, then near hits.
        assert requests[("api", "miss", "memcached")] == 1
        assert requests[("api", "hit", "memcached")] == 1
        assert requests[("api", "hit", "near")] == 2
        ops = {
            (s.labels["cache_operation"], s.labels["cache_backend"])
            for s in await t.samples("cache_operation_duration_seconds_count")
        }
        # Near hits came from the front (no timing); the memcached lookups were timed.
        assert ("get", "near") not in ops
        assert ("get", "memcached") in ops


async def test_served_hits_join_the_callers_trace() -> None:
    async with traced_app(keep_ratio=1.0) as t:
        await t.client.get("/api/market/tickers/BTCUSDT")
        traceparent = f"00-{'ab' * 16}-{'cd' * 8}-01"
        served = await t.client.get(
            "/api/market/tickers/BTCUSDT", headers={"traceparent": traceparent}
        )
        assert served.status_code == 200
        last = t.spans.named(f"GET {ROUTE}")[-1]
        assert last.context is not None
        assert last.context.trace_id == int("ab" * 16, 16)
        assert last.parent is not None
        assert last.parent.span_id == int("cd" * 8, 16)
        assert dict(last.attributes or {})["cache.result"] == "hit"


async def test_dropped_served_hits_are_counted_and_export_nothing() -> None:
    async with traced_app(keep_ratio=0.0) as t:
        for _ in range(5):
            assert (await t.client.get("/api/market/tickers/BTCUSDT")).status_code == 200
        assert t.spans.named(f"GET {ROUTE}") == []
        assert t.telemetry.keeper.stats.dropped_traces == 5


async def test_served_hits_are_sampled_at_the_configured_ratio() -> None:
    async with traced_app(keep_ratio=0.5) as t:
        for _ in range(400):
            assert (await t.client.get("/api/market/tickers/BTCUSDT")).status_code == 200
        kept = len(t.spans.named(f"GET {ROUTE}"))
        assert 140 < kept < 260, kept
        stats = t.telemetry.keeper.stats
        assert stats.kept_traces + stats.dropped_traces >= 400
