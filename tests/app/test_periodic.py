from __future__ import annotations

import asyncio

from app.periodic import Periodic


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
