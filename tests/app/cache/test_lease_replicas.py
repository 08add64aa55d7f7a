"""Cross-replica single-flight, measured from outside: real `market-api` processes under uvicorn,
one real memcached, one exchange simulator process that counts the calls it serves.

Run with `-s` to see the figures each test prints.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections.abc import Iterator
from contextlib import AsyncExitStack, ExitStack, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.exchange_sim import simulator_process
from devstack.process import ManagedProcess
from tests.support.market_process import MarketProcess, market_process

pytestmark = [pytest.mark.memcached, pytest.mark.server]

ROUTE = "/api/dashboard/overview"
"""Cold, it costs one upstream call: the ticker snapshot the overview is computed from."""
UPSTREAM_ENDPOINT = "/tickers"
REQUESTS = 300
LATENCY_MS = 1000.0
"""Long enough that every replica's first request misses before any load is stored."""
SLACK = 5.0


@contextmanager
def exchange(latency_ms: float) -> Iterator[ManagedProcess]:
    with tempfile.TemporaryDirectory() as tmp:
        sim = simulator_process(latency_ms=latency_ms, jitter_ms=0, log_path=Path(tmp) / "s.log")
        with sim:
            try:
                yield sim
            finally:
                sim.kill()  # a call left sleeping would hold up a graceful stop


@contextmanager
def fleet(
    replicas: int, memcached: ManagedProcess, sim: ManagedProcess, **env: str
) -> Iterator[list[MarketProcess]]:
    settings = {
        "MEMCACHED_SERVERS": memcached.address,
        "UPSTREAM_URL": f"http://{sim.address}",
        "UPSTREAM_TIMEOUT": "60",
        # Nothing expires during a test: every upstream call counted is a miss let through.
        "MARKET_TTL": "600",
        "DASHBOARD_TTL": "600",
        "GC_FREEZE": "false",
        **env,
    }
    with ExitStack() as stack:
        yield [stack.enter_context(market_process(settings)) for _ in range(replicas)]


async def upstream_calls(sim: ManagedProcess) -> int:
    async with httpx.AsyncClient(base_url=f"http://{sim.address}") as client:
        calls: int = (await client.get("/stats")).json()["calls"].get(UPSTREAM_ENDPOINT, 0)
        return calls


async def lease_outcomes(servers: list[MarketProcess]) -> dict[str, int]:
    total: dict[str, int] = {}
    async with httpx.AsyncClient() as client:
        for server in servers:
            answer = await client.get(f"{server.url}/api/monitoring/performance/metrics/cache")
            for outcome, n in answer.json()["leases"].items():
                total[outcome] = total.get(outcome, 0) + n
    return total


async def ask(client: httpx.AsyncClient) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = await client.get(ROUTE)
    return response, time.monotonic() - started


async def ask_all(servers: list[MarketProcess], per_server: int) -> list[tuple[Any, float]]:
    """`per_server` concurrent requests to every server at once; (body, seconds) each."""
    limits = httpx.Limits(max_connections=per_server)
    async with AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=s.url, limits=limits, timeout=120.0)
            )
            for s in servers
        ]
        answers = await asyncio.gather(*(ask(c) for c in clients for _ in range(per_server)))
    for response, _ in answers:
        assert response.status_code == 200, response.text
    return [(response.content, seconds) for response, seconds in answers]


@pytest.mark.parametrize(
    ("replicas", "lease_wait", "expected_calls"),
    [
        pytest.param(1, "", 1, id="1-replica"),
        pytest.param(3, "", 1, id="3-replicas"),
        pytest.param(3, "0", 3, id="3-replicas-leases-off"),
    ],
)
async def test_a_cold_route_costs_one_upstream_call_whatever_the_replica_count(
    memcached: ManagedProcess, replicas: int, lease_wait: str, expected_calls: int
) -> None:
    env = {"CACHE_LEASE_WAIT": lease_wait} if lease_wait else {}
    with exchange(LATENCY_MS) as sim, fleet(replicas, memcached, sim, **env) as servers:
        before = await upstream_calls(sim)
        answers = await ask_all(servers, REQUESTS // replicas)
        spent = await upstream_calls(sim) - before
        outcomes = await lease_outcomes(servers)
    latencies = sorted(seconds for _, seconds in answers)
    print(
        f"\n{replicas} replica(s) x {REQUESTS // replicas} concurrent cold {ROUTE}, leases "
        f"{'off' if lease_wait == '0' else 'on'}: {spent} upstream {UPSTREAM_ENDPOINT} call(s); "
        f"lease outcomes {outcomes}; latency median {statistics.median(latencies):.3f} s, "
        f"max {latencies[-1]:.3f} s"
    )
    assert spent == expected_calls
    if lease_wait != "0":
        assert len({body for body, _ in answers}) == 1  # one load served everyone
        assert outcomes.get("acquired") == 2  # the overview and the snapshot it is built from
        assert "waited_loaded" not in outcomes
    else:
        assert outcomes == {}


async def test_killing_the_lease_holder_mid_load_stalls_no_other_replica_past_the_bound(
    memcached: ManagedProcess,
) -> None:
    wait = 2.0
    env = {"CACHE_LEASE_WAIT": str(wait), "CACHE_LEASE_TTL": "60"}
    with exchange(50.0) as sim, fleet(3, memcached, sim, **env) as servers:
        holder, *others = servers
        async with httpx.AsyncClient(base_url=f"http://{sim.address}") as control:
            await control.put("/conditions", json={"latency_ms": 60_000})
            async with httpx.AsyncClient(base_url=holder.url, timeout=120.0) as doomed:
                held = asyncio.create_task(doomed.get(ROUTE))
                deadline = time.monotonic() + SLACK
                while await upstream_calls(sim) < 1:  # its load is with the exchange now
                    assert time.monotonic() < deadline, "the first replica never called upstream"
                    await asyncio.sleep(0.02)
                await control.put("/conditions", json={"latency_ms": 50})
                waiting = asyncio.create_task(ask_all(others, 50))
                await asyncio.sleep(0.3)
                holder.managed.kill()
                with pytest.raises(httpx.HTTPError):
                    await held
            answers = await waiting
        outcomes = await lease_outcomes(others)
        spent = await upstream_calls(sim)
    latencies = sorted(seconds for _, seconds in answers)
    print(
        f"\nlease holder SIGKILLed mid-load, {len(answers)} requests to the 2 other replicas: "
        f"latency min {latencies[0]:.3f} s, median {statistics.median(latencies):.3f} s, max "
        f"{latencies[-1]:.3f} s (CACHE_LEASE_WAIT={wait}); lease outcomes {outcomes}; "
        f"{spent} upstream calls in all"
    )
    assert latencies[-1] <= wait + SLACK
    assert latencies[0] >= wait * 0.9  # they did wait for the holder first
    # Each survivor loaded once after the bound, without waiting again for the snapshot.
    assert outcomes == {"waited_loaded": 2 * len(others)}
    assert spent == 1 + len(others)
