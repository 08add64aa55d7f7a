from __future__ import annotations

import asyncio

import pytest

from app.cache.singleflight import SingleFlight


async def test_concurrent_callers_share_one_call() -> None:
    group = SingleFlight()
    calls = 0

    async def work() -> int:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.01)
        return 42

    results = await asyncio.gather(*(group.do("k", work) for _ in range(50)))
    assert results == [42] * 50
    assert calls == 1
    assert group.shared == 49
    assert len(group) == 0


async def test_errors_reach_every_caller_and_are_not_remembered() -> None:
    group = SingleFlight()

    async def boom() -> int:
        await asyncio.sleep(0.01)
        raise RuntimeError("upstream down")

    results = await asyncio.gather(*(group.do("k", boom) for _ in range(5)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert len(group) == 0

    async def ok() -> int:
        return 1

    assert await group.do("k", ok) == 1


async def test_a_cancelled_caller_does_not_cancel_the_others() -> None:
    group = SingleFlight()

    async def slow() -> str:
        await asyncio.sleep(0.05)
        return "done"

    first = asyncio.create_task(group.do("k", slow))
    await asyncio.sleep(0)
    second = asyncio.create_task(group.do("k", slow))
    await asyncio.sleep(0.01)
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second == "done"
