"""The live checks behind /bottlenecks apply the rules' `for:` and minimum history.

Time is a fake clock the test advances; each step takes one window sample (what the sampler task
does every 15 s in the app), so nothing sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass

from telemetry import thresholds as th
from telemetry.bottlenecks import AlertState, Check, LiveAlerts
from telemetry.window import RecentWindow, Snapshot

HTTP_BOUNDS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
INTERVAL = 15


@dataclass
class FakeProcess:
    """A clock and an RSS the test sets; snapshots read both."""

    now: float = 1000.0
    rss: int = 50 << 20

    def snapshot(self) -> Snapshot:
        return Snapshot(self.now, 0, 0, (0,) * (len(HTTP_BOUNDS) + 1), self.rss)


def started(process: FakeProcess) -> tuple[RecentWindow, LiveAlerts, list[list[Check]]]:
    """A window whose every sample is judged (as in the app), and the judgements made."""
    judged: list[list[Check]] = []
    live: LiveAlerts | None = None

    def judge(snapshot: Snapshot) -> None:
        assert live is not None
        judged.append(live.evaluate(snapshot))

    window = RecentWindow(process.snapshot, interval=INTERVAL, on_sample=judge)
    live = LiveAlerts(window, HTTP_BOUNDS, lambda: 0)
    window._sample()
    return window, live, judged


def step(process: FakeProcess, window: RecentWindow, seconds: float, growth: int = 0) -> None:
    """Advance the clock sample by sample, the RSS growing by `growth` bytes per second."""
    for _ in range(int(seconds // INTERVAL)):
        process.now += INTERVAL
        process.rss += growth * INTERVAL
        window._sample()


def check(live: LiveAlerts, alert: str) -> Check:
    return next(c for c in live.evaluate() if c.alert == alert)


LEAK = th.MEMORY_LEAK_SUSPECTED.alert
HIGH = th.MEMORY_HIGH.alert


def test_a_fresh_process_with_start_up_growth_reports_no_leak() -> None:
    # 10 s after start RSS has grown fast (imports, caches warming): the old check extrapolated
    # that to gigabytes. With less than the minimum history nothing is judged.
    process = FakeProcess(rss=40 << 20)
    window, live, judged = started(process)
    process.now += 10
    process.rss = 70 << 20
    leak = check(live, LEAK)
    assert leak.state is AlertState.INACTIVE
    assert not leak.breached
    assert leak.value is None
    # Two minutes on, still growing fast: still not judged.
    step(process, window, 120, growth=100_000)
    assert all(c.state is AlertState.INACTIVE for run in judged for c in run if c.alert == LEAK)
    assert not check(live, LEAK).breached


def test_a_leak_is_pending_for_its_for_duration_then_firing() -> None:
    process = FakeProcess()
    window, live, _ = started(process)
    growth = 20_000  # bytes/s: 288 MB more in 4 h, from 50 MiB: far past the 150 MiB line
    minimum = th.LEAK_MIN_HISTORY_SECONDS
    step(process, window, minimum - INTERVAL, growth)
    assert check(live, LEAK).state is AlertState.INACTIVE  # one sample short of the minimum

    step(process, window, INTERVAL, growth)  # exactly the minimum history: judged, breached
    leak = check(live, LEAK)
    assert leak.breached
    assert leak.state is AlertState.PENDING
    assert leak.active_seconds == 0
    assert leak.for_seconds == th.MEMORY_LEAK_SUSPECTED.for_seconds

    step(process, window, th.MEMORY_LEAK_SUSPECTED.for_seconds - INTERVAL, growth)
    leak = check(live, LEAK)
    assert leak.state is AlertState.PENDING
    assert leak.active_seconds == th.MEMORY_LEAK_SUSPECTED.for_seconds - INTERVAL

    step(process, window, INTERVAL, growth)
    leak = check(live, LEAK)
    assert leak.state is AlertState.FIRING
    assert leak.active_seconds == th.MEMORY_LEAK_SUSPECTED.for_seconds
    assert process.rss < th.RSS_LIMIT_BYTES  # a prediction, not the memory alert
    assert check(live, HIGH).state is AlertState.INACTIVE


def test_one_evaluation_below_the_line_resets_the_for_duration() -> None:
    process = FakeProcess(rss=th.RSS_LIMIT_BYTES + 1)
    window, live, _ = started(process)
    for_seconds = th.MEMORY_HIGH.for_seconds
    step(process, window, for_seconds - INTERVAL)
    assert check(live, HIGH).state is AlertState.PENDING

    process.rss = th.RSS_LIMIT_BYTES  # at the line: not above it
    step(process, window, INTERVAL)
    assert check(live, HIGH).state is AlertState.INACTIVE
    assert check(live, HIGH).active_seconds is None

    process.rss = th.RSS_LIMIT_BYTES + 1
    step(process, window, INTERVAL)
    assert check(live, HIGH).active_seconds == 0  # counted again from the first sample above
    step(process, window, for_seconds - INTERVAL)
    assert check(live, HIGH).state is AlertState.PENDING
    step(process, window, INTERVAL)
    firing = check(live, HIGH)
    assert firing.state is AlertState.FIRING
    assert firing.as_dict()["state"] == "firing"
