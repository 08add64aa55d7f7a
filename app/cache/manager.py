"""The unified cache manager: one API over memcached and the in-memory fallback.

Callers see namespaces, TTLs and JSON values. Underneath, the manager picks the store for each call
(memcached while its breaker lets it, memory otherwise), builds valid keys that change with each
namespace version, collapses concurrent misses, and counts everything.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Final, TypeVar

from app.cache.backends.base import CacheBackend, CacheBackendError
from app.cache.backends.memory import MemoryBackend
from app.cache.breaker import BreakerState, CircuitBreaker
from app.cache.instrumentation import CacheInstrumentation, NoopCacheInstrumentation
from app.cache.keys import data_key, validate_name, version_key
from app.cache.namespaces import NAMESPACES
from app.cache.serialization import CacheDecodeError, decode, encode
from app.cache.singleflight import SingleFlight
from app.cache.stats import CacheStats
from app.periodic import Periodic
from app.ratelimit_log import RateLimitedLogger

log = logging.getLogger(__name__)

DEFAULT_NAMESPACES: Final = NAMESPACES
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


class CacheManager:
    """Namespaced JSON cache with a shared store, a memory fallback and a circuit breaker."""

    def __init__(
        self,
        *,
        memory: MemoryBackend,
        shared: CacheBackend | None = None,
        breaker: CircuitBreaker | None = None,
        default_ttl: int = 300,
        namespace_ttls: dict[str, int] | None = None,
        key_prefix: str = "market-api",
        max_item_bytes: int = 1_000_000,
        version_refresh: float = 1.0,
        cleanup_interval: float = 30.0,
        namespaces: Iterable[str] = DEFAULT_NAMESPACES,
        instrumentation: CacheInstrumentation | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.memory = memory
        self.shared = shared
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
        self._sweeper = Periodic("cache-sweeper", cleanup_interval, self.memory.sweep)
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
    async def get(self, namespace: str, key: str, default: Any = None) -> Any:
        """The cached value, or `default` on a miss (pass MISSING to tell None from a miss)."""
        scope = self.instrumentation.start("get", namespace)
        try:
            full = await self._key(namespace, key)
            if self.force_miss:
                backend, payload = self.backend_name, None
            else:
                backend, payload = await self._read(full)
            value: Any = MISSING
            if payload is not None:
                try:
                    value = decode(payload)
                except CacheDecodeError:
                    self.stats.decode_errors += 1
                    self._warn.warning(
                        "decode", "dropping undecodable cache entry in %s", namespace
                    )
                    await self._remove(full)
            result = "miss" if value is MISSING else "hit"
            self.stats.requests[(namespace, result, backend)] += 1
        except BaseException as exc:
            scope.finish(self.backend_name, "", exc)
            raise
        scope.finish(backend, result, None)
        return default if value is MISSING else value

    async def set(self, namespace: str, key: str, value: Any, ttl: int | None = None) -> bool:
        """Store a value; False if it was not cached because it is too large.

        Raises TypeError for a value JSON cannot represent.
        """
        scope = self.instrumentation.start("set", namespace)
        try:
            stored, backend = await self._store(namespace, key, encode(value), ttl)
        except BaseException as exc:
            scope.finish(self.backend_name, "", exc)
            raise
        scope.finish(backend, "", None)
        return stored

    async def delete(self, namespace: str, key: str) -> bool:
        scope = self.instrumentation.start("delete", namespace)
        try:
            full = await self._key(namespace, key)
            existed, backend = await self._remove(full)
            self.stats.deletes[namespace] += 1
        except BaseException as exc:
            scope.finish(self.backend_name, "", exc)
            raise
        scope.finish(backend, "", None)
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
        value = await self.get(namespace, key, MISSING)
        if value is not MISSING:
            return value
        full = await self._key(namespace, key)
        return await self._flights.do(full, lambda: self._load(namespace, key, loader, ttl))

    async def invalidate(self, namespace: str) -> int:
        """Make every key of a namespace unreachable at once by bumping its version.

        Nothing is flushed: old entries age out under their TTL or LRU. Returns the new version.
        """
        self._check_namespace(namespace)
        vkey = version_key(self.key_prefix, namespace)
        current = self._versions.get(namespace, (self._initial_version(), 0.0))[0]
        new: int | None = None
        if self.shared is not None and self.breaker.allow():
            try:
                new = await self.shared._incr(vkey, 1)
                if new is None:
                    new = current + 1
                    await self.shared._set(vkey, str(new).encode(), 0)
                self.breaker.record_success()
            except CacheBackendError as exc:
                self._failed(exc)
                new = None
            except BaseException:
                self.breaker.record_abandoned()
                raise
        if new is None:
            new = current + 1
            if self.shared is not None:
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
            ping = getattr(self.shared, "ping", None)
            shared_ok = bool(await ping()) if ping is not None else None
        degraded = self.shared is not None and (
            shared_ok is False or self.breaker.state is not BreakerState.CLOSED
        )
        return {
            "status": "degraded" if degraded else "ok",
            "backend": self.backend_name,
            "breaker_state": self.breaker.state.value,
            "memcached": None
            if self.shared is None
            else {"reachable": shared_ok, "servers": getattr(self.shared, "servers", [])},
            "memory": {"entries": self.memory.entries, "bytes": self.memory.bytes_used},
        }

    # ------------------------------------------------------------------ internals
    async def _load(
        self, namespace: str, key: str, loader: Callable[[], Awaitable[Any]], ttl: int | None
    ) -> Any:
        try:
            value = await loader()
        except Exception:
            self.stats.loader_errors += 1
            raise
        payload = encode(value)
        scope = self.instrumentation.start("set", namespace)
        try:
            _, backend = await self._store(namespace, key, payload, ttl)
        except BaseException as exc:
            scope.finish(self.backend_name, "", exc)
            raise
        scope.finish(backend, "", None)
        # Callers get the same shape on a miss as on a later hit (tuples become lists, ...).
        return decode(payload)

    async def _store(
        self, namespace: str, key: str, payload: bytes, ttl: int | None
    ) -> tuple[bool, str]:
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
            return False, self.backend_name
        full = await self._key(namespace, key)
        self.stats.sets[namespace] += 1
        if self.shared is not None and self.breaker.allow():
            try:
                stored = await self.shared._set(full, payload, seconds)
            except CacheBackendError as exc:
                self._failed(exc)
            except BaseException:
                self.breaker.record_abandoned()
                raise
            else:
                self.breaker.record_success()
                # A copy left in the fallback from an earlier outage would be stale next time.
                self.memory.delete_now(full)
                if not stored:
                    self.stats.oversized += 1
                return stored, self.shared.name
        elif self.shared is not None:
            self._fallback("breaker_open")
        return self.memory.set_now(full, payload, seconds), self.memory.name

    async def _read(self, full: str) -> tuple[str, bytes | None]:
        shared = self.shared
        if shared is None:
            return self.memory.name, self.memory.get_now(full)
        if not self.breaker.allow():
            self._fallback("breaker_open")
            return self.memory.name, self.memory.get_now(full)
        try:
            payload = await shared._get(full)
        except CacheBackendError as exc:
            self._failed(exc)
            return self.memory.name, self.memory.get_now(full)
        except BaseException:
            self.breaker.record_abandoned()
            raise
        self.breaker.record_success()
        return shared.name, payload

    async def _remove(self, full: str) -> tuple[bool, str]:
        existed = self.memory.delete_now(full)
        if self.shared is None:
            return existed, self.memory.name
        if not self.breaker.allow():
            self._fallback("breaker_open")
            return existed, self.memory.name
        try:
            existed = await self.shared._delete(full) or existed
        except CacheBackendError as exc:
            self._failed(exc)
            return existed, self.memory.name
        except BaseException:
            self.breaker.record_abandoned()
            raise
        self.breaker.record_success()
        return existed, self.shared.name

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
        if self.shared is not None and self.breaker.allow():
            vkey = version_key(self.key_prefix, namespace)
            try:
                raw = await self.shared._get(vkey)
                if raw is None:
                    await self.shared._add(vkey, str(local).encode(), 0)
                    raw = await self.shared._get(vkey)
                if namespace in self._unsynced:
                    # Beyond both: what the store had and what was handed out meanwhile.
                    raw = str(max(int(raw or 0), local) + 1).encode()
                    await self.shared._set(vkey, raw, 0)
                    self._unsynced.discard(namespace)
                self.breaker.record_success()
                if raw is not None:
                    version = int(raw)
            except CacheBackendError as exc:
                self._failed(exc)
            except ValueError:
                self.stats.decode_errors += 1
            except BaseException:
                self.breaker.record_abandoned()
                raise
        self._versions[namespace] = (version, self._clock())
        return version

    def _initial_version(self) -> int:
        return time.time_ns() // 1_000_000

    def _check_namespace(self, namespace: str) -> None:
        if namespace not in self.namespaces:
            raise ValueError(
                f"unknown cache namespace {namespace!r}; known: {sorted(self.namespaces)}"
            )

    def _failed(self, exc: CacheBackendError) -> None:
        self.stats.errors += 1
        self.breaker.record_failure()
        self._fallback(exc.reason)
        self._warn.warning(f"backend:{exc.reason}", "memcached call failed (%s); using memory", exc)

    def _fallback(self, reason: str) -> None:
        self.stats.fallbacks[reason] += 1
