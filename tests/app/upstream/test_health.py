"""Upstream health is what the calls really did: degraded while the latest call failed."""

from __future__ import annotations

import pytest

from app.upstream import ExchangeSimulator, SimulatorConditions, UnknownSymbol, UpstreamUnavailable
from app.upstream.health import HealthTrackedExchange, UpstreamHealth


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_no_call_yet_is_ok_with_nothing_to_show() -> None:
    report = UpstreamHealth().report()
    assert report["status"] == "ok"
    assert report["last_success"] is None
    assert report["last_failure"] is None
    assert report["recent_failures"] == 0


def test_failures_degrade_until_a_success_and_are_counted_over_the_recent_span() -> None:
    clock = FakeClock()
    health = UpstreamHealth(recent_seconds=60, clock=clock, wall=lambda: 1_700_000_000.0)
    health.succeeded()
    clock.now += 5
    health.failed("upstream /tickers: timed out")
    clock.now += 5
    health.failed("upstream /tickers: connection failed: ConnectError")
    report = health.report()
    assert report["status"] == "degraded"
    assert report["consecutive_failures"] == 2
    assert report["recent_failures"] == 2
    assert report["last_success"] == {"at": 1_700_000_000.0, "seconds_ago": 10.0}
    assert report["last_failure"]["reason"] == "upstream /tickers: connection failed: ConnectError"
    assert report["last_failure"]["seconds_ago"] == 0.0

    clock.now += 56  # the first failure is now 61 s old, the second 56 s
    assert health.recent_failures() == 1
    health.succeeded()
    report = health.report()
    assert report["status"] == "ok"
    assert report["consecutive_failures"] == 0
    assert report["recent_failures"] == 1  # recovered, and the recent trouble still shows
    assert report["last_success"]["seconds_ago"] == 0.0


async def test_the_wrapper_reports_every_outcome() -> None:
    sim = ExchangeSimulator(10, SimulatorConditions(0, 0, 0), seed=1)
    health = UpstreamHealth()
    client = HealthTrackedExchange(sim, health)
    await client.tickers()
    assert health.status == "ok"
    with pytest.raises(UnknownSymbol):
        await client.ticker("NOPE")
    assert health.status == "ok"  # an answer, not a failure
    sim.conditions.error_rate = 1.0
    with pytest.raises(UpstreamUnavailable):
        await client.history("BTCUSDT", 5)
    assert health.status == "degraded"
    assert "simulated" in health.report()["last_failure"]["reason"]
    sim.conditions.error_rate = 0.0
    await client.ticker("BTCUSDT")
    assert health.status == "ok"
    assert client.calls == sim.calls == 4
