"""Cache spans (children of the request span) and cache metrics, on memory and real memcached."""

from __future__ import annotations

import asyncio

import pytest

from devstack.process import ManagedProcess
from tests.conftest import make_settings
from tests.telemetry.conftest import traced_app


async def test_cache_operations_are_child_spans_without_keys() -> None:
    async with traced_app() as t:
        await t.client.get("/api/market/tickers/BTCUSDT")  # miss: get + set in `market`
        await t.client.get("/api/market/tickers/ETHUSDT")  # hit
        roots = t.spans.named("GET /api/market/tickers/{symbol}")
        assert len(roots) == 2
        first, second = roots
        assert first.context is not None
        assert second.context is not None
        children = [s for s in t.spans.spans if s.name.startswith("cache.")]
        by_trace = {
            tid: [s for s in children if s.context is not None and s.context.trace_id == tid]
            for tid in (first.context.trace_id, second.context.trace_id)
        }
        first_ops = sorted(s.name for s in by_trace[first.context.trace_id])
        assert first_ops == ["cache.get market", "cache.set market"]
        (hit,) = by_trace[second.context.trace_id]
        assert hit.parent is not None
        assert hit.parent.span_id == second.context.span_id
        attrs = dict(hit.attributes or {})
        assert attrs == {
            "cache.operation": "get",
            "cache.namespace": "market",
            "cache.backend": "memory",
            "cache.breaker.state": "closed",
            "cache.result": "hit",
        }
        assert first.start_time is not None
        assert first.end_time is not None
        for span in by_trace[first.context.trace_id]:
            assert span.start_time is not None
            assert span.end_time is not None
            assert first.start_time <= span.start_time <= span.end_time <= first.end_time
        await t.client.get("/api/market/movers", params={"limit": 7})  # key "movers:7"
        assert t.spans.named("cache.get api")
        for span in t.spans.spans:
            values = [span.name, *map(str, dict(span.attributes or {}).values())]
            assert not any("movers:7" in v for v in values), span


async def test_cache_metrics_on_the_scrape_path() -> None:
    async with traced_app() as t:
        for _ in range(3):
            await t.client.get("/api/market/movers")
        requests = {
            (
                s.labels["cache_namespace"],
                s.labels["cache_result"],
                s.labels["cache_backend"],
            ): s.value
            for s in await t.samples("cache_requests_total")
        }
        assert requests[("api", "miss", "memory")] == 1
        assert requests[("api", "hit", "memory")] == 2
        durations = await t.samples("cache_operation_duration_seconds_count")
        ops = {(s.labels["cache_operation"], s.labels["cache_backend"]): s.value for s in durations}
        # The first answer's two misses (api, market) are timed; the two later answers were
        # served before routing from the in-process tier: counted above, not timed.
        assert ops[("get", "memory")] == 2
        assert ops[("set", "memory")] == 2
        (breaker,) = await t.samples("cache_breaker_state")
        assert breaker.value == 0


async def test_background_cache_calls_become_their_own_traces() -> None:
    async with traced_app() as t:
        await t.services.cache.set("dashboard", "k", 1)
        (span,) = t.spans.named("cache.set dashboard")
        assert span.parent is None


async def test_cache_spans_show_the_managers_own_breaker() -> None:
    settings = make_settings(cache_breaker_failures=1, cache_breaker_cooldown=60)
    async with traced_app(settings) as t:
        t.services.cache.breaker.record_failure()
        await t.client.get("/api/market/tickers/BTCUSDT")
        (get,) = t.spans.named("cache.get market")
        assert dict(get.attributes or {})["cache.breaker.state"] == "open"


@pytest.mark.memcached
async def test_breaker_fallbacks_and_pool_connections(memcached: ManagedProcess) -> None:
    settings = make_settings(
        memcached_servers=memcached.address,
        cache_breaker_failures=2,
        cache_breaker_cooldown=60,
        cache_connection_pool_min=3,
    )
    async with traced_app(settings) as t:
        await t.client.get("/api/market/movers")
        pool = {
            s.labels["db_client_connection_state"]: s.value
            for s in await t.samples("db_client_connection_count")
        }
        assert pool["idle"] >= 1
        assert pool["used"] == 0
        memcached.kill()
        for _ in range(5):
            assert (await t.client.get("/api/market/movers")).status_code == 200
            await asyncio.sleep(0.01)
        (breaker,) = await t.samples("cache_breaker_state")
        assert breaker.value == 2
        fallbacks = {s.labels["reason"]: s.value for s in await t.samples("cache_fallbacks_total")}
        assert fallbacks.get("breaker_open", 0) > 0
        assert sum(fallbacks.values()) >= 2
        spans = [s for s in t.spans.spans if s.name == "cache.get api"]
        assert any(dict(s.attributes or {}).get("cache.breaker.state") == "open" for s in spans)


@pytest.mark.memcached
async def test_lease_outcomes_on_the_scrape_path_and_in_the_cache_stats(
    memcached: ManagedProcess,
) -> None:
    settings = make_settings(memcached_servers=memcached.address)
    async with traced_app(settings) as t:
        assert (await t.client.get("/api/market/movers")).status_code == 200
        # The movers answer and the ticker snapshot it is computed from: one lease each.
        leases = {
            s.labels["cache_lease_outcome"]: s.value for s in await t.samples("cache_leases_total")
        }
        assert leases == {"acquired": 2}
        stats = (await t.client.get("/api/monitoring/performance/metrics/cache")).json()
        assert stats["leases"] == {"acquired": 2}
