"""`market-api` itself over two memcached nodes: it starts, spreads keys, and loses one calmly."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.market_process import market_process
from tests.support.memcached_pair import memcached_nodes, stat_of

pytestmark = [pytest.mark.memcached, pytest.mark.server]

HEALTH = "/api/monitoring/performance/health"
ROUTES = (
    "/api/market/movers",
    "/api/market/tickers/BTCUSDT",
    "/api/market/tickers/ETHUSDT",
    "/api/dashboard/overview",
    "/api/analysis/regime?symbol=ETHUSDT&window=50",
)


async def _pool(client: httpx.AsyncClient) -> dict[str, float]:
    text = (await client.get("/metrics")).text
    return {
        sample.labels["db_client_connection_state"]: sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "db_client_connection_count"
        for sample in family.samples
    }


async def _hammer(client: httpx.AsyncClient, stop: asyncio.Event, statuses: list[int]) -> None:
    i = 0
    while not stop.is_set():
        try:
            response = await client.get(ROUTES[i % len(ROUTES)])
        except httpx.HTTPError:
            statuses.append(0)
        else:
            statuses.append(response.status_code)
        i += 1


async def test_market_api_starts_on_two_nodes_and_keeps_answering_when_one_dies() -> None:
    with memcached_nodes(2) as nodes:
        servers = [n.address for n in nodes]
        env = {
            "MEMCACHED_SERVERS": ",".join(servers),
            "MEMCACHED_DEAD_TIMEOUT": "1",
            "CACHE_CONNECTION_POOL_MIN": "2",
            "CACHE_CONNECTION_POOL_MAX": "8",
            "CACHE_BREAKER_FAILURES": "3",
            "MARKET_TTL": "1",
        }
        with market_process(env) as app:
            async with httpx.AsyncClient(base_url=app.url, timeout=5.0) as client:
                # Start-up used to end in AttributeError on HashClient.version.
                health = (await client.get(HEALTH)).json()
                assert health["components"]["cache"]["memcached"]["nodes"] == {
                    s: {"reachable": True, "in_ring": True} for s in servers
                }
                pool = await _pool(client)
                assert pool["idle"] + pool["used"] >= 4  # pool_min on each node

                statuses: list[int] = []
                stop = asyncio.Event()
                workers = [asyncio.create_task(_hammer(client, stop, statuses)) for _ in range(8)]
                await asyncio.sleep(1.0)
                items = [stat_of(n, "curr_items") for n in nodes]
                assert all(count > 0 for count in items), items  # keys on both nodes
                before_kill = len(statuses)
                killed_at = time.monotonic()
                nodes[1].kill()
                await asyncio.sleep(2.0)
                stop.set()
                await asyncio.gather(*workers)
                health = (await client.get(HEALTH)).json()
                cache = (await client.get("/api/monitoring/performance/metrics/cache")).json()
            log = app.log()

    after_kill = statuses[before_kill:]
    print(
        f"\nmarket-api, one node of two killed: {len(after_kill)} requests in "
        f"{time.monotonic() - killed_at:.1f} s after the kill, non-200: "
        f"{sum(1 for s in after_kill if s != 200)}"
    )
    assert after_kill
    assert set(statuses) == {200}, sorted(set(statuses))
    memcached = health["components"]["cache"]["memcached"]
    assert memcached["nodes"][servers[1]] == {"reachable": False, "in_ring": False}
    assert memcached["nodes"][servers[0]] == {"reachable": True, "in_ring": True}
    assert health["components"]["cache"]["breaker_state"] == "closed"
    assert health["components"]["cache"]["backend"] == "memcached"
    assert cache["breaker_state"] == "closed", cache
    assert f"memcached node {servers[1]} left the ring" in log
