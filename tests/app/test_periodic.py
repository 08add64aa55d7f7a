from __future__ import annotations

import asyncio

from app.periodic import Periodic
from tests.support.log_records import root_log_records


async def test_ticks_until_stopped() -> None:
    ticks: list[int] = []
    task = Periodic("t", 0.01, lambda: ticks.append(1))
    task.start()
    task.start()  # idempotent: still one task
    await asyncio.sleep(0.08)
    assert task.running
    await task.stop()
    assert not task.running
    seen = len(ticks)
    assert 2 <= seen <= 9
    await asyncio.sleep(0.03)
    assert len(ticks) == seen
    await task.stop()  # stopping twice is harmless


async def test_a_tick_that_raises_is_logged_counted_and_the_task_keeps_running() -> None:
    calls: list[int] = []

    def flaky() -> None:
        calls.append(1)
        if len(calls) <= 3:
            raise OSError(24, "Too many open files")

    task = Periodic("flaky", 0.01, flaky)
    with root_log_records() as records:
        task.start()
        for _ in range(200):
            if len(calls) >= 6:
                break
            await asyncio.sleep(0.01)
        assert task.running
        await task.stop()  # raises nothing: the failures were handled
    assert len(calls) >= 6
    assert task.errors == 3
    warnings = [r for r in records if r.name == "app.periodic"]
    # Rate-limited: the first failure is logged, the next two within the interval are not.
    assert len(warnings) == 1
    assert "flaky" in warnings[0].getMessage()
    assert "Too many open files" in warnings[0].getMessage()
