"""Parameter combinations of /api/analysis/regime must not multiply upstream calls."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest

from tests.support.market_process import market_process

pytestmark = pytest.mark.server

SYMBOLS = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "XRPUSDT"]
REQUESTS = 2000


async def test_random_windows_cost_one_history_read_per_symbol() -> None:
    # TTLs longer than the test: every upstream call counted below is one the cache let through.
    env = {"MARKET_TTL": "600", "ANALYSIS_TTL": "600"}
    with market_process(env) as server:
        async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:

            async def upstream_calls() -> int:
                answer = await client.get("/api/monitoring/performance/metrics/cache")
                calls: int = answer.json()["upstream_calls"]
                return calls

            assert (await client.get("/api/dashboard/overview")).status_code == 200  # tickers
            before = await upstream_calls()
            rng = random.Random(11)
            queries = [(rng.choice(SYMBOLS), rng.randint(10, 1000)) for _ in range(REQUESTS)]
            semaphore = asyncio.Semaphore(16)

            async def ask(symbol: str, window: int) -> None:
                async with semaphore:
                    response = await client.get(
                        "/api/analysis/regime", params={"symbol": symbol, "window": window}
                    )
                assert response.status_code == 200
                body = response.json()
                assert (body["symbol"], body["window"]) == (symbol, window)

            await asyncio.gather(*(ask(s, w) for s, w in queries))
            spent = await upstream_calls() - before
    print(f"{REQUESTS} regime requests over {len(SYMBOLS)} symbols: {spent} upstream calls")
    assert spent <= len(SYMBOLS)
