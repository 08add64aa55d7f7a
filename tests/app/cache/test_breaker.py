from __future__ import annotations

from app.cache.breaker import BreakerState, CircuitBreaker


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_consecutive_failures_only() -> None:
    breaker = CircuitBreaker(3, cooldown=5, clock=FakeClock())
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # resets the count
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_exactly_one_probe_after_cooldown_and_success_closes() -> None:
    clock = FakeClock()
    changes: list[BreakerState] = []
    breaker = CircuitBreaker(1, cooldown=5, clock=clock, on_change=changes.append)
    breaker.record_failure()
    clock.now = 4.9
    assert not breaker.allow()
    clock.now = 5.0
    assert breaker.allow()
    assert breaker.state is BreakerState.HALF_OPEN
    assert not breaker.allow()
    assert not breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_failed_probe_reopens_for_a_full_cooldown() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, cooldown=5, clock=clock)
    breaker.record_failure()
    clock.now = 6
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    clock.now = 10
    assert not breaker.allow()
    clock.now = 11
    assert breaker.allow()
    assert breaker.opened_count == 2


def test_abandoned_probe_lets_another_caller_probe() -> None:
    clock = FakeClock()
    breaker = CircuitBreaker(1, cooldown=1, clock=clock)
    breaker.record_failure()
    clock.now = 2
    assert breaker.allow()
    breaker.record_abandoned()
    assert breaker.allow()


def test_gauge_encoding() -> None:
    assert [s.gauge_value for s in BreakerState] == [0, 1, 2]
