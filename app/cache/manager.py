"""The unified cache manager: one API over memcached, its near-cache and the in-memory fallback.

Callers see namespaces, TTLs and JSON values. Underneath, the manager picks the store for each call
(the near-cache for hot keys, memcached while its breaker lets it, memory otherwise), builds valid
keys that change with each namespace version, collapses concurrent misses (in this process, and
with memcached across replicas through a lease), and counts everything.
Every call to the shared store goes through one breaker-guarded helper (`_guarded`) and every
operation through one instrumentation helper (`_observed`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict
from enum import Enum
from typing import Any, Final, NamedTuple, TypeVar

from app.cache.backends.base import CacheBackend, CacheBackendError
from app.cache.backends.memory import MemoryBackend
from app.cache.breaker import BreakerState, CircuitBreaker
from app.cache.instrumentation import CacheInstrumentation, NoopCacheInstrumentation
from app.cache.keys import data_key, lease_key, validate_name, version_key
from app.cache.lease import LEASE_VALUE, LeasePolicy, LeaseStoreDown, SharedLease
from app.cache.namespaces import NAMESPACES
from app.cache.serialization import CacheDecodeError, decode, encode
from app.cache.singleflight import SingleFlight
from app.cache.stats import CacheStats
from app.periodic import Periodic
from app.ratelimit_log import RateLimitedLogger

log = logging.getLogger(__name__)

DEFAULT_NAMESPACES: Final = NAMESPACES
NEAR: Final = "near"
"""`cache.backend` of a hit served by the near-cache in front of memcached."""
T = TypeVar("T")


class _Missing:
    """Sentinel type: lets `get` tell a cached None from a miss."""

    _instance: _Missing | None = None

    def __new__(cls) -> _Missing:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


class _Unavailable(Enum):
    """The shared store did not answer (breaker open or call failed): use the fallback."""

    TOKEN = 0


UNAVAILABLE: Final = _Unavailable.TOKEN


class CacheEntry(NamedTuple):
    """A stored payload as read, with the tier that answered.

    `seconds_left` is how long this instance will keep serving these bytes without asking the
    shared store again: the remaining TTL of an in-memory entry, the remaining life of a
    near-cache copy, or the near-cache bound for a payload just read from memcached; never
    longer than the TTL the item was stored with. HTTP answers announce it as `max-age`.
    """

    payload: bytes
    tier: str
    seconds_left: float


class CacheManager:
    """Namespaced JSON cache with a shared store, a near-cache, a memory fallback and a breaker."""

    def __init__(
        self,
        *,
        memory: MemoryBackend,
        shared: CacheBackend | None = None,
        near: MemoryBackend | None = None,
        breaker: CircuitBreaker | None = None,
        default_ttl: int = 300,
        namespace_ttls: dict[str, int] | None = None,
        key_prefix: str = "market-api",
        max_item_bytes: int = 1_000_000,
        version_refresh: float = 1.0,
        cleanup_interval: float = 30.0,
        namespaces: Iterable[str] = DEFAULT_NAMESPACES,
        instrumentation: CacheInstrumentation | None = None,
        lease: LeasePolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.memory = memory
        self.shared = shared
        # Only useful in front of a shared store, and only while versions are trusted locally:
        # a copy never outlives the bound within which an invalidation elsewhere is seen.
        self.near = near if shared is not None and version_refresh > 0 else None
        self.breaker = breaker or CircuitBreaker(failure_threshold=5, cooldown=5.0)
        self.default_ttl = default_ttl
        self.namespaces = frozenset(validate_name(n) for n in namespaces)
        self._ttls = dict(namespace_ttls or {})
        self.key_prefix = validate_name(key_prefix, "key prefix") if key_prefix else "c"
        self.max_item_bytes = max_item_bytes
        self.version_refresh = version_refresh
        self.cleanup_interval = cleanup_interval
        self.instrumentation: CacheInstrumentation = instrumentation or NoopCacheInstrumentation()
        self.stats = CacheStats()
        self._clock = clock
        self._versions: dict[str, tuple[int, float]] = {}
        # Namespaces invalidated while the shared store was unreachable: their bump is replayed
        # there as soon as it answers, or its old entries would come back with the connection.
        self._unsynced: set[str] = set()
        self._flights = SingleFlight()
        # Across replicas, what the single-flight is inside one: only with a shared store.
        self.lease = SharedLease(lease) if lease is not None and shared is not None else None
        self._sweeper = Periodic("cache-sweeper", cleanup_interval, self._sweep)
        self._warn = RateLimitedLogger(log)
        self.force_miss = False
        """Fault injection: every read counts as a miss without touching a store, so callers
        fall through to their loaders (one attribute check on the hot path)."""

    # ------------------------------------------------------------------ lifecycle
    @property
    def backend_name(self) -> str:
        """The store reads go to right now."""
        if self.shared is None or self.breaker.state is not BreakerState.CLOSED:
            return self.memory.name
        return self.shared.name

    @property
    def sweeper(self) -> Periodic:
        """The background task that drops expired in-memory entries."""
        return self._sweeper

    async def start(self) -> None:
        if self.shared is not None:
            await self.shared.start()
        self._sweeper.start()

    async def close(self) -> None:
        await self._sweeper.stop()
        if self.shared is not None:
            await self.shared.close()

    # ------------------------------------------------------------------ public API
    async def get(
        self, namespace: str, key: str, default: Any = None, *, ttl: int | None = None
    ) -> Any:
        """The cached value, or `default` on a miss (pass MISSING to tell None from a miss).

        `ttl` is the one the value is stored with, when not the namespace's: it bounds how long
        a near-cache copy is served.
        """
        value, _ = await self._observed("get", namespace, self._lookup(namespace, key, ttl, True))
        return default if value is MISSING else value

    async def get_entry(
        self, namespace: str, key: str, *, ttl: int | None = None
    ) -> CacheEntry | None:
        """The stored JSON bytes as they are, for answers sent without decoding them."""
        entry, _ = await self._observed("get", namespace, self._lookup(namespace, key, ttl, False))
        return entry if isinstance(entry, CacheEntry) else None

    def peek(self, namespace: str, key: str, accept: Callable[[CacheEntry], T | None]) -> T | None:
        """Serve from the in-process tier only, synchronously: a hit costs one dict lookup.

        `accept` turns the entry into what the caller serves, or None if it cannot use it. Only
        a used hit is counted (as a `get` hit of its tier); anything else records nothing,
        because the caller then does the full `get`, which records the lookup once, as a hit or
        a miss. No instrumentation scope is opened: timing one dict read would cost more than
        the read (see `SERVED_TIER_SCOPE_KEY` for what telemetry records instead).
        """
        if self.force_miss:
            return None
        version = self._versions.get(namespace)
        if version is None or (
            self.shared is not None and self._clock() - version[1] >= self.version_refresh
        ):
            return None
        local = self.memory if self.shared is None else self.near
        if local is None:
            return None
        found = local.lookup_now(data_key(self.key_prefix, namespace, version[0], key))
        if found is None:
            return None
        tier = local.name if local is self.memory else NEAR
        value = accept(CacheEntry(found[0], tier, found[1]))
        if value is None:
            return None
        self.stats.requests[(namespace, "hit", tier)] += 1
        return value

    async def set(self, namespace: str, key: str, value: Any, ttl: int | None = None) -> bool:
        """Store a value; False if it was not cached because it is too large.

        Raises TypeError for a value JSON cannot represent.
        """
        stored, _ = await self._observed(
            "set", namespace, self._store(namespace, key, encode(value), ttl)
        )
        return stored

    async def delete(self, namespace: str, key: str) -> bool:
        existed, _ = await self._observed("delete", namespace, self._delete(namespace, key))
        return existed

    async def get_or_set(
        self,
        namespace: str,
        key: str,
        loader: Callable[[], Awaitable[Any]],
        ttl: int | None = None,
    ) -> Any:
        """Cached value, or the loader's result stored for next time.

        Concurrent misses on one key share one loader call. A loader's exception reaches every
        waiting caller and nothing is cached.
        """
        value = await self.get(namespace, key, MISSING, ttl=ttl)
        if value is not MISSING:
            return value
        # Callers get the same shape on a miss as on a later hit (tuples become lists, ...).
        return decode((await self._fill(namespace, key, loader, ttl)).payload)

    async def get_or_set_entry(
        self,
        namespace: str,
        key: str,
        loader: Callable[[], Awaitable[Any]],
        ttl: int | None = None,
    ) -> CacheEntry:
        """`get_or_set` that returns the stored JSON bytes instead of decoding them."""
        entry = await self.get_entry(namespace, key, ttl=ttl)
        if entry is not None:
            return entry
        return await self._fill(namespace, key, loader, ttl)

    async def invalidate(self, namespace: str) -> int:
        """Make every key of a namespace unreachable at once by bumping its version.

        Nothing is flushed: old entries age out under their TTL or LRU. Returns the new version.
        """
        self._check_namespace(namespace)
        vkey = version_key(self.key_prefix, namespace)
        current = self._versions.get(namespace, (self._initial_version(), 0.0))[0]
        new: int | _Unavailable = UNAVAILABLE
        shared = self.shared
        if shared is not None:

            async def bump() -> int:
                bumped = await shared.incr(vkey, 1)
                if bumped is None:
                    bumped = current + 1
                    await shared.set(vkey, str(bumped).encode(), 0)
                return bumped

            new = await self._guarded(bump)
        if new is UNAVAILABLE:
            new = current + 1
            if shared is not None:
                self._unsynced.add(namespace)
        self._versions[namespace] = (new, self._clock())
        self.stats.invalidations[namespace] += 1
        return new

    def ttl_for(self, namespace: str, ttl: int | None = None) -> int:
        if ttl is not None:
            if ttl < 0:
                raise ValueError("ttl must be >= 0 seconds")
            return ttl
        return self._ttls.get(namespace, self.default_ttl)

    async def health(self) -> dict[str, Any]:
        """Each component's state; degraded (not failed) while the fallback serves."""
        shared_ok: bool | None = None
        if self.shared is not None:
            shared_ok = await self.shared.ping()
        degraded = self.shared is not None and (
            shared_ok is False or self.breaker.state is not BreakerState.CLOSED
        )
        report: dict[str, Any] = {
            "status": "degraded" if degraded else "ok",
            "backend": self.backend_name,
            "breaker_state": self.breaker.state.value,
            "memcached": None
            if self.shared is None
            else {"reachable": shared_ok, "servers": self.shared.servers, **self._nodes_report()},
            "memory": {"entries": self.memory.entries, "bytes": self.memory.bytes_used},
        }
        if self.near is not None:
            report["near"] = {"entries": self.near.entries, "bytes": self.near.bytes_used}
        return report

    def _nodes_report(self) -> dict[str, Any]:
        """Per node reachability and ring membership, when there is more than one node."""
        nodes = self.shared.server_health if self.shared is not None else {}
        if len(nodes) < 2:
            return {}
        return {"nodes": {address: asdict(health) for address, health in nodes.items()}}

    # ------------------------------------------------------------------ internals
    async def _observed(
        self, operation: str, namespace: str, body: Awaitable[tuple[T, str, str]]
    ) -> tuple[T, str]:
        """Run one operation inside its instrumentation scope: the one place scopes finish.

        `body` answers (value, backend that answered, "hit"/"miss"/""); the value and the
        backend come back.
        """
        scope = self.instrumentation.start(operation, namespace)
        try:
            value, backend, result = await body
        except BaseException as exc:
            scope.finish(self.backend_name, "", exc)
            raise
        scope.finish(backend, result, None)
        return value, backend

    async def _guarded(self, call: Callable[..., Awaitable[T]], *args: Any) -> T | _Unavailable:
        """Every call to the shared store: breaker first, outcome recorded, failures counted.

        UNAVAILABLE means the caller falls back to memory (the reason is already counted).
        """
        if not self.breaker.allow():
            self._fallback("breaker_open")
            return UNAVAILABLE
        try:
            result = await call(*args)
        except CacheBackendError as exc:
            self._failed(exc)
            return UNAVAILABLE
        except BaseException:
            self.breaker.record_abandoned()
            raise
        self.breaker.record_success()
        return result

    async def _lookup(
        self, namespace: str, key: str, ttl: int | None, decoded: bool
    ) -> tuple[Any, str, str]:
        """The decoded value (or the raw entry), MISSING on a miss; counts the lookup."""
        full = await self._key(namespace, key)
        entry: CacheEntry | None = None
        if self.force_miss:
            backend = self.backend_name
        else:
            backend, entry = await self._read(full, self.ttl_for(namespace, ttl))
        value: Any = MISSING
        if entry is not None:
            try:
                if decoded:
                    value = decode(entry.payload)
                else:
                    if entry.tier != NEAR and entry.tier != self.memory.name:
                        # Served as-is: bytes from outside the process are checked once, here.
                        decode(entry.payload)
                    value = entry
            except CacheDecodeError:
                self.stats.decode_errors += 1
                self._warn.warning("decode", "dropping undecodable cache entry in %s", namespace)
                await self._remove(full)
        result = "miss" if value is MISSING else "hit"
        self.stats.requests[(namespace, result, backend)] += 1
        return value, backend, result

    async def _read(self, full: str, ttl: int) -> tuple[str, CacheEntry | None]:
        shared = self.shared
        if shared is None:
            return self.memory.name, self._local(self.memory, full, self.memory.name)
        near = self.near
        if near is not None:
            found = near.lookup_now(full)
            if found is not None:
                return NEAR, CacheEntry(found[0], NEAR, found[1])
        payload = await self._guarded(shared.get, full)
        if payload is UNAVAILABLE:
            return self.memory.name, self._local(self.memory, full, self.memory.name)
        if payload is None:
            return shared.name, None
        return shared.name, CacheEntry(payload, shared.name, self._keep_near(full, payload, ttl))

    @staticmethod
    def _local(backend: MemoryBackend, full: str, tier: str) -> CacheEntry | None:
        found = backend.lookup_now(full)
        return None if found is None else CacheEntry(found[0], tier, found[1])

    def _keep_near(self, full: str, payload: bytes, ttl: int) -> float:
        """Copy a shared payload into the near-cache; returns how long the copy is served.

        The bound is the version refresh interval and the item's TTL, whichever is shorter, so
        a change made through another instance is seen here no later than an invalidation is.
        """
        bound = min(self.version_refresh, ttl) if ttl > 0 else self.version_refresh
        if self.near is not None and bound > 0:
            self.near.set_now(full, payload, bound)
        return max(bound, 0.0)

    async def _fill(
        self, namespace: str, key: str, loader: Callable[[], Awaitable[Any]], ttl: int | None
    ) -> CacheEntry:
        full = await self._key(namespace, key)
        entry: CacheEntry = await self._flights.do(
            full, lambda: self._load(namespace, key, full, loader, ttl)
        )
        return entry

    async def _load(
        self,
        namespace: str,
        key: str,
        full: str,
        loader: Callable[[], Awaitable[Any]],
        ttl: int | None,
    ) -> CacheEntry:
        """One process's load of a missing key, under a lease shared with the other replicas.

        Without a shared store, with the breaker not closed, or while misses are forced, it
        loads straight away as it always did.
        """
        lease, shared = self.lease, self.shared
        if (
            lease is None
            or shared is None
            or self.force_miss
            or self.breaker.state is not BreakerState.CLOSED
        ):
            return await self._load_and_store(namespace, key, loader, ttl)
        lkey = lease_key(self.key_prefix, full)
        seconds = self.ttl_for(namespace, ttl)

        async def acquire() -> bool:
            return self._answered(
                await self._guarded(shared.add, lkey, LEASE_VALUE, lease.policy.ttl)
            )

        async def peek() -> CacheEntry | None:
            payload = self._answered(await self._guarded(shared.get, full))
            if payload is None:
                return None
            try:
                decode(payload)
            except CacheDecodeError:
                self.stats.decode_errors += 1
                return None  # the holder's load is taken over as if nothing were there
            return CacheEntry(payload, shared.name, self._keep_near(full, payload, seconds))

        async def release() -> None:
            self._answered(await self._guarded(shared.delete, lkey))

        entry, outcome = await lease.fill(
            acquire,
            peek,
            release,
            lambda: self._load_and_store(namespace, key, loader, ttl),
        )
        self.stats.leases[outcome] += 1
        return entry

    @staticmethod
    def _answered(result: T | _Unavailable) -> T:
        """A lease call's answer; LeaseStoreDown when the store gave none (already counted)."""
        if result is UNAVAILABLE:
            raise LeaseStoreDown
        return result

    async def _load_and_store(
        self, namespace: str, key: str, loader: Callable[[], Awaitable[Any]], ttl: int | None
    ) -> CacheEntry:
        try:
            value = await loader()
        except Exception:
            self.stats.loader_errors += 1
            raise
        payload = encode(value)
        stored, backend = await self._observed(
            "set", namespace, self._store(namespace, key, payload, ttl)
        )
        seconds = self.ttl_for(namespace, ttl)
        left = (seconds or math.inf) if stored else 0.0
        if stored and self.shared is not None and backend == self.shared.name:
            left = min(left, self.version_refresh)
        return CacheEntry(payload, backend, left)

    async def _store(
        self, namespace: str, key: str, payload: bytes, ttl: int | None
    ) -> tuple[bool, str, str]:
        seconds = self.ttl_for(namespace, ttl)
        if len(payload) > self.max_item_bytes:
            self.stats.oversized += 1
            self._warn.warning(
                f"oversized:{namespace}",
                "not caching a %d-byte value in %s (limit %d bytes)",
                len(payload),
                namespace,
                self.max_item_bytes,
            )
            return False, self.backend_name, ""
        full = await self._key(namespace, key)
        self.stats.sets[namespace] += 1
        shared = self.shared
        if shared is not None:
            stored = await self._guarded(shared.set, full, payload, seconds)
            if stored is not UNAVAILABLE:
                # A copy left in the fallback from an earlier outage would be stale next time.
                self.memory.delete_now(full)
                if not stored:
                    self.stats.oversized += 1
            # The near-cache only ever holds what memcached answered to a read: the next read
            # here fetches the new value (and keeps it near), so no instance keeps serving its
            # own stale copy.
            if self.near is not None:
                self.near.delete_now(full)
            if stored is not UNAVAILABLE:
                return stored, shared.name, ""
        return self.memory.set_now(full, payload, seconds), self.memory.name, ""

    async def _delete(self, namespace: str, key: str) -> tuple[bool, str, str]:
        full = await self._key(namespace, key)
        existed, backend = await self._remove(full)
        self.stats.deletes[namespace] += 1
        return existed, backend, ""

    async def _remove(self, full: str) -> tuple[bool, str]:
        """Drop a key from every tier; answers whether it existed and the tier that said so."""
        existed = self.memory.delete_now(full)
        if self.near is not None:
            self.near.delete_now(full)
        shared = self.shared
        if shared is None:
            return existed, self.memory.name
        removed = await self._guarded(shared.delete, full)
        if removed is UNAVAILABLE:
            return existed, self.memory.name
        return removed or existed, shared.name

    async def _key(self, namespace: str, key: str) -> str:
        cached = self._versions.get(namespace)
        if cached is not None and (
            self.shared is None or self._clock() - cached[1] < self.version_refresh
        ):
            return data_key(self.key_prefix, namespace, cached[0], key)
        if cached is None:
            self._check_namespace(namespace)
        if not isinstance(key, str):
            raise TypeError(f"cache keys are strings, not {type(key).__name__}")
        version = await self._flights.do(
            f"\x00version:{namespace}", lambda: self._load_version(namespace)
        )
        return data_key(self.key_prefix, namespace, version, key)

    async def _load_version(self, namespace: str) -> int:
        """Read the shared version; create it if absent; keep the local one if the store is down.

        A fresh version starts at the current time in milliseconds, so a version key evicted from
        memcached never restarts at a number whose old entries may still be stored.
        """
        local = self._versions.get(namespace, (self._initial_version(), 0.0))[0]
        version = local
        shared = self.shared
        if shared is not None:
            vkey = version_key(self.key_prefix, namespace)

            async def read() -> bytes | None:
                raw = await shared.get(vkey)
                if raw is None:
                    await shared.add(vkey, str(local).encode(), 0)
                    raw = await shared.get(vkey)
                if namespace in self._unsynced:
                    # Beyond both: what the store had and what was handed out meanwhile.
                    raw = str(max(int(raw or 0), local) + 1).encode()
                    await shared.set(vkey, raw, 0)
                    self._unsynced.discard(namespace)
                return raw

            try:
                raw = await self._guarded(read)
                if raw is not UNAVAILABLE and raw is not None:
                    version = int(raw)
            except ValueError:
                self.stats.decode_errors += 1
        self._versions[namespace] = (version, self._clock())
        return version

    def _initial_version(self) -> int:
        return time.time_ns() // 1_000_000

    def _check_namespace(self, namespace: str) -> None:
        if namespace not in self.namespaces:
            raise ValueError(
                f"unknown cache namespace {namespace!r}; known: {sorted(self.namespaces)}"
            )

    def _sweep(self) -> None:
        self.memory.sweep()
        if self.near is not None:
            self.near.sweep()

    def _failed(self, exc: CacheBackendError) -> None:
        self.stats.errors += 1
        self.breaker.record_failure()
        self._fallback(exc.reason)
        self._warn.warning(f"backend:{exc.reason}", "memcached call failed (%s); using memory", exc)

    def _fallback(self, reason: str) -> None:
        self.stats.fallbacks[reason] += 1
