from __future__ import annotations

import os

import psutil
import pytest

from app.faults import InsufficientMemory, MemoryBallast
from app.faults.ballast import RESERVE_BYTES

MIB = 1 << 20


def rss() -> int:
    return int(psutil.Process(os.getpid()).memory_info().rss)


async def test_ballast_is_resident_and_given_back() -> None:
    ballast = MemoryBallast(max_mb=256)
    before = rss()
    await ballast.resize(64)
    held = rss()
    assert ballast.size_mb == 64
    # Every page was written: RSS grew by (nearly) the whole ballast, not by a few page tables.
    assert held - before > 60 * MIB
    await ballast.resize(16)
    assert ballast.size_mb == 16
    assert held - rss() > 44 * MIB, "shrinking unmaps the chunks at once"
    ballast.release()
    assert ballast.size_mb == 0
    assert rss() - before < 8 * MIB


async def test_cap_and_machine_reserve_are_enforced_before_allocating() -> None:
    free = 512 * MIB
    ballast = MemoryBallast(max_mb=1000, available=lambda: free)
    with pytest.raises(ValueError, match=r"0\.\.1000 MiB"):
        await ballast.resize(1001)
    too_much = (free - RESERVE_BYTES) // MIB + 1
    with pytest.raises(InsufficientMemory):
        await ballast.resize(too_much)
    assert ballast.size_mb == 0
    await ballast.resize(too_much - 1)
    assert ballast.size_mb == too_much - 1
    # Shrinking never needs memory.
    free = 0
    await ballast.resize(1)
    assert ballast.size_mb == 1
    ballast.release()
