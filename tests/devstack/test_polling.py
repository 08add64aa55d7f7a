"""The one deadline loop behind every readiness wait of the dev tooling, on a fake clock."""

from __future__ import annotations

import pytest

from devstack.polling import poll_until


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_returns_as_soon_as_ready() -> None:
    fake = FakeTime()
    answers = iter([False, False, True])
    poll_until(
        lambda: next(answers),
        timeout=1,
        interval=0.25,
        waiting_for=lambda: "never",
        clock=fake.clock,
        sleep=fake.sleep,
    )
    assert fake.sleeps == [0.25, 0.25]


def test_times_out_with_what_it_waited_for_as_last_seen() -> None:
    fake = FakeTime()
    seen: list[int] = []

    def ready() -> bool:
        seen.append(len(seen))
        return False

    with pytest.raises(TimeoutError, match=r"still nothing after 6 tries"):
        poll_until(
            ready,
            timeout=1.0,
            interval=0.25,
            waiting_for=lambda: f"still nothing after {len(seen)} tries",
            clock=fake.clock,
            sleep=fake.sleep,
        )
    assert fake.now == pytest.approx(1.25)  # the first check past the deadline


def test_a_check_that_raises_gives_up_at_once() -> None:
    fake = FakeTime()

    def ready() -> bool:
        raise RuntimeError("the server exited with 1")

    with pytest.raises(RuntimeError, match="exited"):
        poll_until(
            ready,
            timeout=10,
            interval=1,
            waiting_for=lambda: "never",
            clock=fake.clock,
            sleep=fake.sleep,
        )
    assert fake.sleeps == []
