from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator

import pytest

from app.cache import CacheManager
from app.faults import FaultInjector, FaultSettings, InsufficientMemory, MemoryBallast
from tests.app.cache.conftest import build_manager

MIB = 1 << 20


def seconds_clock() -> itertools.count[float]:
    """Each reading is one second after the previous one, however fast the test runs."""
    return itertools.count(0.0, 1.0)


@pytest.fixture
async def cache() -> AsyncIterator[CacheManager]:
    manager = build_manager()
    await manager.start()
    yield manager
    await manager.close()


async def wait_until_idle(injector: FaultInjector) -> None:
    for _ in range(500):
        if not injector.leaking:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the leak never stopped")


async def test_apply_sets_every_knob_and_reset_clears_them(cache: CacheManager) -> None:
    injector = FaultInjector()
    injector.bind_cache(cache)
    await injector.apply(FaultSettings(force_cache_miss=True, ballast_mb=3))
    assert cache.force_miss is True
    assert injector.state() == {
        "faults": FaultSettings(force_cache_miss=True, ballast_mb=3).model_dump(),
        "ballast_mb": 3,
        "leaking": False,
    }
    await injector.reset()
    assert cache.force_miss is False
    assert injector.state()["ballast_mb"] == 0


async def test_cache_bound_later_gets_the_current_setting(cache: CacheManager) -> None:
    injector = FaultInjector()
    await injector.apply(FaultSettings(force_cache_miss=True))
    injector.bind_cache(cache)
    assert cache.force_miss is True


async def test_leak_grows_at_its_rate_up_to_its_cap() -> None:
    clock = seconds_clock()
    injector = FaultInjector(leak_tick=0.001, clock=lambda: next(clock))
    # 120 MiB a minute is 2 MiB per (fake) second: 1 -> 3 -> 5 -> 7, then capped at 8.
    await injector.apply(FaultSettings(ballast_mb=1, leak_mb_per_minute=120, leak_max_mb=8))
    assert injector.leaking
    await wait_until_idle(injector)
    assert injector.ballast.size_mb == 8
    await injector.close()
    assert injector.ballast.size_mb == 0


async def test_slow_leak_accrues_fractions() -> None:
    clock = seconds_clock()
    injector = FaultInjector(leak_tick=0.001, clock=lambda: next(clock))
    # 30 MiB a minute: half a MiB per second, so one MiB every other tick.
    await injector.apply(FaultSettings(leak_mb_per_minute=30, leak_max_mb=3))
    await wait_until_idle(injector)
    assert injector.ballast.size_mb == 3
    await injector.close()


async def test_new_settings_and_close_stop_the_leak() -> None:
    injector = FaultInjector(leak_tick=0.01)
    await injector.apply(FaultSettings(leak_mb_per_minute=1, leak_max_mb=100))
    task = injector._leak
    assert task is not None
    assert injector.leaking
    await injector.apply(FaultSettings(ballast_mb=2))
    assert task.cancelled()
    assert not injector.leaking
    assert injector.ballast.size_mb == 2

    await injector.apply(FaultSettings(leak_mb_per_minute=1, leak_max_mb=100))
    task = injector._leak
    assert task is not None
    await injector.close()
    assert task.cancelled()
    assert injector.ballast.size_mb == 0
    assert injector.settings == FaultSettings()


async def test_refused_ballast_changes_nothing(cache: CacheManager) -> None:
    ballast = MemoryBallast(max_mb=2048, available=lambda: 300 * MIB)
    injector = FaultInjector(ballast=ballast)
    injector.bind_cache(cache)
    await injector.apply(FaultSettings(upstream_latency_ms=5))
    with pytest.raises(InsufficientMemory):
        await injector.apply(FaultSettings(force_cache_miss=True, ballast_mb=200))
    assert injector.settings == FaultSettings(upstream_latency_ms=5)
    assert cache.force_miss is False
    assert ballast.size_mb == 0


async def test_leak_stops_at_the_machine_reserve() -> None:
    # A machine with 260 MiB available before the ballast takes its share.
    ballast = MemoryBallast(max_mb=2048, available=lambda: 260 * MIB - ballast.size_mb * MIB)
    clock = seconds_clock()
    injector = FaultInjector(ballast=ballast, leak_tick=0.001, clock=lambda: next(clock))
    await injector.apply(FaultSettings(leak_mb_per_minute=60, leak_max_mb=100))
    await wait_until_idle(injector)
    # The 256 MiB reserve leaves room for 4.
    assert ballast.size_mb == 4
    await injector.close()
