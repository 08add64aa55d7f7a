"""One load per missing key across every replica sharing the store, not one per replica.

The in-process single-flight collapses the misses of one process; replicas behind a load balancer
still each miss a cold key at once, and each would call upstream. Before loading, a replica takes
a short lease on the key in the shared store (memcached `add`: only one caller can create it).
The holder loads, stores the value and deletes the lease. The others wait: short sleeps that grow
(with jitter, so replicas do not poll in step), re-reading the store after each, and return the
value as soon as it is there.

Waiting is bounded. A holder that died (SIGKILL, lost network) never stores anything; after
`wait` seconds each waiter loads by itself, exactly as without leases. A lease that disappears
early (its holder's load failed and it let go, or its TTL ran out) is taken over by the next
waiter that tries, so a failed holder costs the others one pause, not the whole bound.

Nothing here can fail a request: when the store cannot answer a lease call, the caller loads.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import random
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Final, TypeVar

T = TypeVar("T")

LEASE_VALUE: Final = b"1"


class LeaseOutcome(StrEnum):
    """How a miss went; the bounded label value of `cache.leases`."""

    ACQUIRED = "acquired"
    """This replica held the lease and loaded."""
    WAITED_HIT = "waited_hit"
    """Another replica's value was found in the store instead of loading."""
    WAITED_LOADED = "waited_loaded"
    """The bound passed without a value: loaded anyway (the holder is slow or gone)."""
    UNAVAILABLE = "unavailable"
    """The store could not answer a lease call: loaded without one."""


class LeaseStoreDown(Exception):
    """Raised by a lease call the shared store did not answer (already counted by the caller)."""


@dataclass(frozen=True, slots=True)
class LeasePolicy:
    """`ttl` is whole seconds (memcached's unit): how long a holder's lease outlives its
    crash. `wait` is how long a waiter waits for the holder's value before loading itself."""

    ttl: int
    wait: float
    first_pause: float = 0.005
    max_pause: float = 0.1

    def __post_init__(self) -> None:
        if self.ttl < 1:
            raise ValueError("lease ttl is at least 1 second")
        if self.wait <= 0:
            raise ValueError("lease wait must be > 0 seconds")

    def pauses(self, rng: random.Random) -> Iterator[float]:
        """Sleeps between re-reads: doubling up to `max_pause`, each drawn from [half, full]."""
        pause = self.first_pause
        while True:
            yield pause * rng.uniform(0.5, 1.0)
            pause = min(pause * 2, self.max_pause)


_overdue: contextvars.ContextVar[bool] = contextvars.ContextVar("lease_overdue", default=False)
"""Set while a waiter loads after its full wait: the loads that load needs (a ticker snapshot
behind an aggregate) do not wait again for leases the same gone holder most likely still has,
so a dead holder delays a request by one bound, not one bound per level of nesting."""


class SharedLease:
    """The lease protocol for one missing key, over three store calls the cache manager gives.

    `acquire` answers whether this caller now holds the lease; `peek` the value another replica
    stored, or None; `release` deletes the lease. Each raises LeaseStoreDown when the store does
    not answer.
    """

    def __init__(
        self,
        policy: LeasePolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        self._clock = clock
        self._rng = rng or random.Random()

    async def fill(
        self,
        acquire: Callable[[], Awaitable[bool]],
        peek: Callable[[], Awaitable[T | None]],
        release: Callable[[], Awaitable[None]],
        load: Callable[[], Awaitable[T]],
    ) -> tuple[T, LeaseOutcome]:
        """The value for a missing key, loaded here or by whichever replica holds the lease."""
        try:
            held = await acquire()
        except LeaseStoreDown:
            return await load(), LeaseOutcome.UNAVAILABLE
        if not held:
            deadline = self._clock() + (0.0 if _overdue.get() else self.policy.wait)
            try:
                for pause in self.policy.pauses(self._rng):
                    left = deadline - self._clock()
                    if left <= 0:
                        break
                    await asyncio.sleep(min(pause, left))
                    found = await peek()
                    if found is not None:
                        return found, LeaseOutcome.WAITED_HIT
                    held = await acquire()  # the lease is gone: its holder failed or it expired
                    if held:
                        break
            except LeaseStoreDown:
                return await load(), LeaseOutcome.UNAVAILABLE
        if held:
            return await self._hold(peek, release, load)
        token = _overdue.set(True)
        try:
            return await load(), LeaseOutcome.WAITED_LOADED
        finally:
            _overdue.reset(token)

    async def _hold(
        self,
        peek: Callable[[], Awaitable[T | None]],
        release: Callable[[], Awaitable[None]],
        load: Callable[[], Awaitable[T]],
    ) -> tuple[T, LeaseOutcome]:
        """Load under the lease; let go of it whatever happens, so waiters never wait for a
        failed load longer than their next re-read."""
        try:
            # A holder that just filled and released it may have done so between this replica's
            # miss and its `add`: read once more before paying for a load.
            try:
                found = await peek()
            except LeaseStoreDown:
                found = None
            if found is not None:
                return found, LeaseOutcome.WAITED_HIT
            return await load(), LeaseOutcome.ACQUIRED
        finally:
            with contextlib.suppress(LeaseStoreDown):  # else it expires with its TTL
                await release()
