"""Memcached through pymemcache, kept off the event loop.

pymemcache is a blocking client. Every call runs in a thread pool sized to the connection pool,
and a semaphore with the same size bounds calls in flight, so a hung server can tie up at most
`pool_max` threads and never queues unbounded work. A slot is given back only when the thread
really finishes, not when the awaiting coroutine gives up, so timeouts cannot oversubscribe the
pool. Every await carries a deadline derived from the socket timeouts. On the normal path the
only cross-thread wake-up is the one delivering the result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections.abc import Callable
from typing import Any, TypeVar

from pymemcache.client.base import PooledClient
from pymemcache.client.hash import HashClient
from pymemcache.exceptions import MemcacheError, MemcacheServerError

from app.cache.backends.base import CacheBackend, CacheBackendError, PoolUsage

T = TypeVar("T")


def _parse_server(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    return host, int(port)


class MemcachedBackend(CacheBackend):
    """One memcached server through a PooledClient, several through a HashClient."""

    name = "memcached"

    def __init__(
        self,
        servers: list[str],
        *,
        pool_min: int,
        pool_max: int,
        connect_timeout: float,
        timeout: float,
        dead_timeout: float = 10.0,
    ) -> None:
        if not servers:
            raise ValueError("MemcachedBackend needs at least one server")
        self._servers = list(servers)
        self.pool_min = pool_min
        self.pool_max = pool_max
        # connect + send + receive, plus scheduling slack.
        self.call_timeout = connect_timeout + 2 * timeout + 0.02
        common: dict[str, Any] = {
            "connect_timeout": connect_timeout,
            "timeout": timeout,
            "no_delay": True,
            "max_pool_size": pool_max,
            "pool_idle_timeout": 60,
        }
        self._client: PooledClient | HashClient
        if len(servers) == 1:
            self._client = PooledClient(_parse_server(servers[0]), **common)
        else:
            self._client = HashClient(
                [_parse_server(s) for s in servers],
                use_pooling=True,
                retry_attempts=2,
                retry_timeout=1,
                dead_timeout=dead_timeout,
                default_noreply=False,
                **common,
            )
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=pool_max, thread_name_prefix="memcached"
        )
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def servers(self) -> list[str]:
        return list(self._servers)

    async def start(self) -> None:
        """Open `pool_min` connections; a server that is down only means fallback for now."""
        self._bind_loop()
        warmups = [self._run(self._client.version) for _ in range(self.pool_min)]
        await asyncio.gather(*warmups, return_exceptions=True)

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        await asyncio.get_running_loop().run_in_executor(None, self._client.close)

    def pool_usage(self) -> PoolUsage:
        """Count pooled connections without taking the pool's lock (a snapshot is enough)."""
        pools = (
            [self._client.client_pool]
            if isinstance(self._client, PooledClient)
            else [c.client_pool for c in self._client.clients.values()]
        )
        idle = used = 0
        for pool in pools:
            used += len(pool.used)
            idle += sum(1 for c in pool.free if getattr(c, "sock", None) is not None)
        return PoolUsage(idle=idle, used=used)

    def _bind_loop(self) -> asyncio.Semaphore:
        if self._slots is None:
            self._loop = asyncio.get_running_loop()
            self._slots = asyncio.Semaphore(self.pool_max)
        return self._slots

    def _release_slot(self, _: concurrent.futures.Future[Any]) -> None:
        loop, slots = self._loop, self._slots
        if loop is None or slots is None or loop.is_closed():
            return
        # The loop may close between the check and the call.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(slots.release)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        slots = self._bind_loop()
        if slots.locked():
            try:
                async with asyncio.timeout(self.call_timeout):
                    await slots.acquire()
            except TimeoutError:
                raise CacheBackendError("pool_exhausted", "no connection free in time") from None
        else:
            await slots.acquire()  # a slot is free: returns without suspending
        try:
            future = self._executor.submit(fn, *args)
        except RuntimeError as exc:  # executor shut down
            slots.release()
            raise CacheBackendError("connection", str(exc)) from exc
        try:
            async with asyncio.timeout(self.call_timeout):
                return await asyncio.wrap_future(future)
        except TimeoutError as exc:  # our deadline, or the socket's (socket.timeout is an alias)
            raise CacheBackendError("timeout", str(exc) or "no answer in time") from None
        except MemcacheServerError as exc:
            raise CacheBackendError("server_error", str(exc)) from exc
        except (MemcacheError, OSError) as exc:
            raise CacheBackendError("connection", str(exc)) from exc
        finally:
            if future.done():
                slots.release()  # the thread is done: free its slot from here, no extra wake-up
            else:
                future.add_done_callback(self._release_slot)  # abandoned: free it when it ends

    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self._run(self._client.get, key)
        return value

    async def set(self, key: str, value: bytes, ttl: int) -> bool:
        try:
            stored: bool = await self._run(self._client.set, key, value, ttl, False)
        except CacheBackendError as exc:
            # Refusing one item (over the server's -I limit) says nothing about its health.
            if exc.reason == "server_error" and "too large" in str(exc):
                return False
            raise
        return bool(stored)

    async def add(self, key: str, value: bytes, ttl: int) -> bool:
        stored: bool = await self._run(self._client.add, key, value, ttl, False)
        return bool(stored)

    async def incr(self, key: str, delta: int) -> int | None:
        value: int | None = await self._run(self._client.incr, key, delta, False)
        return value

    async def delete(self, key: str) -> bool:
        existed: bool = await self._run(self._client.delete, key, False)
        return bool(existed)

    async def ping(self) -> bool:
        """True if every server answers `version` within the call timeout."""
        try:
            await self._run(self._ping_all)
        except CacheBackendError:
            return False
        return True

    def _ping_all(self) -> None:
        if isinstance(self._client, PooledClient):
            self._client.version()
        else:
            for client in self._client.clients.values():
                client.version()
