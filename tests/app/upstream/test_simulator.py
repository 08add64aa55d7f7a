from __future__ import annotations

import time

import pytest

from app.upstream import ExchangeSimulator, SimulatorConditions, UnknownSymbol, UpstreamUnavailable


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def quiet(**kw: object) -> ExchangeSimulator:
    return ExchangeSimulator(60, SimulatorConditions(0, 0, 0), seed=1, **kw)  # type: ignore[arg-type]


async def test_quotes_at_least_50_symbols_with_consistent_stats() -> None:
    sim = quiet()
    tickers = await sim.tickers()
    assert len(tickers) == 60
    assert len({t.symbol for t in tickers}) == 60
    assert "BTCUSDT" in {t.symbol for t in tickers}
    for t in tickers:
        assert t.low_24h <= t.price <= t.high_24h
        assert t.change_pct_24h == pytest.approx((t.price / t.open_24h - 1) * 100, abs=1e-3)


async def test_counts_every_call_it_serves() -> None:
    sim = quiet()
    await sim.tickers()
    await sim.ticker("BTCUSDT")
    with pytest.raises(UnknownSymbol):
        await sim.ticker("NOPEUSDT")
    await sim.history("ETHUSDT", 10)
    assert sim.calls == 4
    assert sim.calls_by_endpoint["/tickers/{symbol}"] == 2


async def test_prices_walk_with_time() -> None:
    clock = FakeClock()
    sim = quiet(clock=clock, step_seconds=1.0)
    before = (await sim.ticker("BTCUSDT")).price
    assert (await sim.ticker("BTCUSDT")).price == before
    clock.now += 5
    history = await sim.history("BTCUSDT", 1000)
    assert history.closes[-6] == pytest.approx(before, rel=1e-6)
    assert (await sim.ticker("BTCUSDT")).price == pytest.approx(history.closes[-1], rel=1e-6)
    assert history.closes[-1] != history.closes[-6]


async def test_latency_and_errors_follow_conditions_at_run_time() -> None:
    sim = quiet()
    sim.conditions.latency_ms = 30
    start = time.perf_counter()
    await sim.tickers()
    assert time.perf_counter() - start >= 0.029
    sim.conditions.latency_ms = 0
    sim.conditions.error_rate = 1.0
    with pytest.raises(UpstreamUnavailable, match="simulated"):
        await sim.tickers()
