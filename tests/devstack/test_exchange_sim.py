"""The simulator's own endpoints beside the exchange wire format: call counts and conditions."""

from __future__ import annotations

import httpx

from app.upstream.simulator import ExchangeSimulator, SimulatorConditions
from devstack.exchange_sim import create_simulator_app


def client(simulator: ExchangeSimulator) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_simulator_app(simulator))
    return httpx.AsyncClient(transport=transport, base_url="http://sim")


async def test_stats_count_the_calls_served_per_endpoint() -> None:
    simulator = ExchangeSimulator(10, SimulatorConditions(0, 0, 0), seed=1)
    async with client(simulator) as sim:
        assert (await sim.get("/stats")).json() == {"calls": {}, "total": 0}
        await sim.get("/tickers")
        await sim.get("/tickers")
        await sim.get(f"/history/{simulator.symbols[0]}", params={"points": 5})
        assert (await sim.get("/stats")).json() == {
            "calls": {"/tickers": 2, "/history/{symbol}": 1},
            "total": 3,
        }


async def test_conditions_change_while_it_runs_and_bad_ones_are_refused() -> None:
    simulator = ExchangeSimulator(10, SimulatorConditions(0, 0, 0), seed=1)
    async with client(simulator) as sim:
        answer = await sim.put("/conditions", json={"latency_ms": 250, "error_rate": 0.5})
        assert answer.json() == {"latency_ms": 250.0, "jitter_ms": 0.0, "error_rate": 0.5}
        assert simulator.conditions.latency_ms == 250.0
        for bad in (b"{", b'{"latency_ms": -1}', b'{"error_rate": 2}', b'{"jitter_ms": "x"}'):
            refused = await sim.put("/conditions", content=bad)
            assert refused.status_code == 400
            assert set(refused.json()) == {"error", "detail"}
        assert (await sim.get("/conditions")).json()["latency_ms"] == 250.0
