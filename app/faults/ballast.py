"""Memory held on purpose, really resident, and really given back.

The ballast is a list of 1 MiB anonymous mappings. Each page of a new chunk is written, so the
kernel backs it and the process RSS grows by the ballast's size; releasing a chunk unmaps it, so
RSS falls again at once. Python objects of the same size would go through the allocator, which
may keep freed memory for reuse and leave RSS high after a release.
"""

from __future__ import annotations

import asyncio
import mmap
from collections.abc import Callable
from typing import Final

import psutil

CHUNK_BYTES: Final = 1 << 20
PAGE_BYTES: Final = mmap.PAGESIZE
STEP_CHUNKS: Final = 16
"""Chunks allocated between two yields to the event loop: a large ballast never blocks it
for more than a few milliseconds at a time."""
RESERVE_BYTES: Final = 256 << 20
"""Memory the machine keeps available whatever the ballast asks for."""


class InsufficientMemory(RuntimeError):
    """The machine cannot spare the memory asked for."""


def available_bytes() -> int:
    return int(psutil.virtual_memory().available)


class MemoryBallast:
    def __init__(self, max_mb: int, available: Callable[[], int] = available_bytes) -> None:
        if max_mb < 0:
            raise ValueError("max_mb must be >= 0")
        self.max_mb = max_mb
        self._available = available
        self._chunks: list[mmap.mmap] = []

    @property
    def size_mb(self) -> int:
        return len(self._chunks)

    def check(self, target_mb: int) -> None:
        """Raise ValueError beyond the cap, InsufficientMemory if the machine cannot spare it."""
        if not 0 <= target_mb <= self.max_mb:
            raise ValueError(f"ballast must be 0..{self.max_mb} MiB, not {target_mb}")
        more = (target_mb - self.size_mb) * CHUNK_BYTES
        if more > 0 and self._available() - more < RESERVE_BYTES:
            raise InsufficientMemory(
                f"{target_mb} MiB of ballast would leave less than "
                f"{RESERVE_BYTES >> 20} MiB available on this machine"
            )

    async def resize(self, target_mb: int) -> None:
        """Grow or shrink to `target_mb` MiB; shrinking is immediate."""
        self.check(target_mb)
        while self.size_mb > target_mb:
            self._chunks.pop().close()
        while self.size_mb < target_mb:
            for _ in range(min(STEP_CHUNKS, target_mb - self.size_mb)):
                self._chunks.append(_resident_chunk())
            await asyncio.sleep(0)

    def release(self) -> None:
        while self._chunks:
            self._chunks.pop().close()


def _resident_chunk() -> mmap.mmap:
    chunk = mmap.mmap(-1, CHUNK_BYTES)
    # One write per page is what makes the kernel back it; the value only has to be non-zero.
    for offset in range(0, CHUNK_BYTES, PAGE_BYTES):
        chunk[offset] = 1
    return chunk
