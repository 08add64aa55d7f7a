"""The one object that owns the app's faults: applies each new setting and undoes it at shutdown.

Changes are serialized (a ballast resize yields to the event loop while it allocates, so two
PUTs could otherwise interleave). A leak is a single background task that grows the ballast
once a tick until its cap; applying new settings or shutting down cancels it first, so at most
one ever runs and nothing outlives the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Callable
from typing import Any

from app.cache.manager import CacheManager
from app.faults.ballast import InsufficientMemory, MemoryBallast
from app.faults.models import MAX_BALLAST_MB, FaultSettings
from app.faults.upstream import FaultyExchange
from app.upstream.client import ExchangeClient

log = logging.getLogger(__name__)


class FaultInjector:
    def __init__(
        self,
        *,
        ballast: MemoryBallast | None = None,
        leak_tick: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        if leak_tick <= 0:
            raise ValueError("leak_tick must be > 0 seconds")
        self.settings = FaultSettings()
        self.ballast = ballast or MemoryBallast(MAX_BALLAST_MB)
        self._leak_tick = leak_tick
        self._clock = clock
        self._rng = rng or random.Random()
        self._cache: CacheManager | None = None
        self._leak: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()

    # ------------------------------------------------------------------ wiring (lifespan)
    def wrap_upstream(self, client: ExchangeClient) -> FaultyExchange:
        return FaultyExchange(client, lambda: self.settings, self._rng)

    def bind_cache(self, cache: CacheManager) -> None:
        self._cache = cache
        cache.force_miss = self.settings.force_cache_miss

    async def close(self) -> None:
        """Undo everything: no task left running, no memory held, reads served normally."""
        async with self._lock:
            await self._stop_leak()
            self.ballast.release()
            self.settings = FaultSettings()
            if self._cache is not None:
                self._cache.force_miss = False

    # ------------------------------------------------------------------ API
    @property
    def leaking(self) -> bool:
        return self._leak is not None and not self._leak.done()

    def state(self) -> dict[str, Any]:
        """The settings in force and what they hold right now."""
        return {
            "faults": self.settings.model_dump(),
            "ballast_mb": self.ballast.size_mb,
            "leaking": self.leaking,
        }

    async def apply(self, settings: FaultSettings) -> None:
        """Replace every fault with `settings`.

        Raises InsufficientMemory, changing nothing, when the machine cannot spare the ballast.
        """
        async with self._lock:
            self.ballast.check(settings.ballast_mb)
            await self._stop_leak()
            self.settings = settings
            if self._cache is not None:
                self._cache.force_miss = settings.force_cache_miss
            await self.ballast.resize(settings.ballast_mb)
            if settings.leak_mb_per_minute > 0:
                self._leak = asyncio.create_task(
                    self._grow(settings.leak_mb_per_minute, settings.leak_max_mb),
                    name="fault-leak",
                )

    async def reset(self) -> None:
        await self.apply(FaultSettings())

    # ------------------------------------------------------------------ internals
    async def _stop_leak(self) -> None:
        task, self._leak = self._leak, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _grow(self, mb_per_minute: float, cap_mb: int) -> None:
        """Add whole MiB as the rate accrues them, until the cap or the machine's reserve."""
        owed = 0.0
        last = self._clock()
        while self.ballast.size_mb < cap_mb:
            await asyncio.sleep(self._leak_tick)
            now = self._clock()
            owed += (now - last) * mb_per_minute / 60
            last = now
            whole = min(int(owed), cap_mb - self.ballast.size_mb)
            if whole <= 0:
                continue
            try:
                await self.ballast.resize(self.ballast.size_mb + whole)
            except InsufficientMemory as exc:
                log.warning("memory leak fault stopped: %s", exc)
                return
            owed -= whole
