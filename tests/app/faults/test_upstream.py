from __future__ import annotations

import random
import time

import httpx
import pytest

from app.faults import FaultSettings, FaultyExchange
from app.upstream.client import UpstreamUnavailable
from app.upstream.http import HttpExchangeClient
from app.upstream.simulator import ExchangeSimulator, SimulatorConditions
from devstack.exchange_sim import create_simulator_app
from devstack.scenarios import SCENARIOS


def simulator() -> ExchangeSimulator:
    return ExchangeSimulator(10, SimulatorConditions(latency_ms=0, jitter_ms=0), seed=1)


async def test_no_fault_forwards_every_call() -> None:
    inner = simulator()
    faulty = FaultyExchange(inner, FaultSettings)
    tickers = await faulty.tickers()
    symbol = tickers[0].symbol
    assert (await faulty.ticker(symbol)).symbol == symbol
    assert len((await faulty.history(symbol, 20)).closes) == 20
    assert faulty.calls == inner.calls == 3


async def test_latency_is_added_to_every_endpoint() -> None:
    faults = FaultSettings(upstream_latency_ms=50)
    faulty = FaultyExchange(simulator(), lambda: faults)
    symbol = (await faulty.tickers())[0].symbol
    for call in (faulty.tickers, lambda: faulty.ticker(symbol), lambda: faulty.history(symbol, 5)):
        start = time.perf_counter()
        await call()
        assert time.perf_counter() - start >= 0.045


async def test_errors_fail_calls_without_sending_them() -> None:
    faults = FaultSettings(upstream_error_rate=1.0)
    inner = simulator()
    faulty = FaultyExchange(inner, lambda: faults)
    with pytest.raises(UpstreamUnavailable) as raised:
        await faulty.history("BTCUSDT", 5)
    assert raised.value.endpoint == "/history/{symbol}"
    assert raised.value.status_code == 503
    assert inner.calls == 0


async def test_error_rate_is_a_fraction_of_calls() -> None:
    faults = FaultSettings(upstream_error_rate=0.25)
    faulty = FaultyExchange(simulator(), lambda: faults, random.Random(3))
    failed = 0
    for _ in range(400):
        try:
            await faulty.tickers()
        except UpstreamUnavailable:
            failed += 1
    assert 60 <= failed <= 140
    assert faulty.calls == 400 - failed


async def test_faults_are_read_at_each_call() -> None:
    current = FaultSettings(upstream_error_rate=1.0)
    faulty = FaultyExchange(simulator(), lambda: current)
    with pytest.raises(UpstreamUnavailable):
        await faulty.tickers()
    current = FaultSettings()
    assert await faulty.tickers()


async def test_the_slow_upstream_scenario_slows_one_replica_in_front_of_a_shared_exchange() -> None:
    """Compose's replicas read one `market-exchange-sim` over HTTP: the scenario's latency is
    added in the replica that got the fault, before its call; the exchange the other replicas
    read is not slowed."""
    exchange = simulator()
    transport = httpx.ASGITransport(app=create_simulator_app(exchange))
    http = HttpExchangeClient("http://exchange", transport=transport)
    faults = FaultSettings(**SCENARIOS["slow-upstream"].faults)
    faulty = FaultyExchange(http, lambda: faults)
    try:
        start = time.perf_counter()
        await faulty.tickers()
        assert time.perf_counter() - start >= faults.upstream_latency_ms / 1000 - 0.005
        assert exchange.calls == 1, "the call still reached the shared exchange"
        assert exchange.conditions.latency_ms == 0, "the exchange itself is not slowed"
    finally:
        await faulty.close()
