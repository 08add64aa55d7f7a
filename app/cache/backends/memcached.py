"""Memcached through pymemcache, kept off the event loop, on one node or several.

pymemcache is a blocking client. Every call runs in a thread pool, and a semaphore per node with
the size of that node's connection pool bounds its calls in flight, so a hung node can tie up at
most `pool_max` threads and never queues unbounded work, nor starves the other nodes of theirs.
A slot is given back only when the thread really finishes, not when the awaiting coroutine gives
up, so timeouts cannot oversubscribe a pool. Every await carries a deadline derived from the
socket timeouts. On the normal path the only cross-thread wake-up is the one delivering the
result.

With several nodes, placement and node health live in `NodeRing`, on the event loop thread.
A node that fails `eject_after` calls in a row leaves the ring; the call that found it gone is
sent once to the node that now holds the key, so losing one node of several costs its keys a
miss each, not an error, and does not reach the manager's breaker. After `dead_timeout` a fresh
connection probes the node with `flush_all`: while it was out, writes for its keys went
elsewhere, so whatever it still holds may be older than what callers wrote since; emptied, it
goes back into the ring and its keys are read from it again.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import logging
import time
from collections.abc import Callable
from typing import Any, Final, TypeVar

from pymemcache.client.base import Client, PooledClient
from pymemcache.exceptions import (
    MemcacheError,
    MemcacheServerError,
    MemcacheUnexpectedCloseError,
)

from app.cache.backends.base import CacheBackend, CacheBackendError, PoolUsage, ServerHealth
from app.cache.backends.memcached_ring import NodeRing

T = TypeVar("T")
log = logging.getLogger(__name__)

NODE_FAILURES: Final = frozenset({"timeout", "connection"})
"""Failures that say something about the node; a refused item or a full pool does not."""


def _parse_server(server: str) -> tuple[str, int]:
    host, _, port = server.rpartition(":")
    return host, int(port)


class _Node:
    """One server: its pooled client and the slots bounding calls to it in flight."""

    __slots__ = ("address", "client", "slots")

    def __init__(self, address: str, client: PooledClient) -> None:
        self.address = address
        self.client = client
        self.slots: asyncio.Semaphore | None = None


class MemcachedBackend(CacheBackend):
    """One or several memcached servers, each through its own PooledClient."""

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
        eject_after: int = 2,
    ) -> None:
        if not servers:
            raise ValueError("MemcachedBackend needs at least one server")
        self._servers = list(dict.fromkeys(servers))
        self.pool_min = pool_min
        self.pool_max = pool_max
        self.dead_timeout = dead_timeout
        # connect + send + receive, plus scheduling slack.
        self.call_timeout = connect_timeout + 2 * timeout + 0.02
        self._client_options: dict[str, Any] = {
            "connect_timeout": connect_timeout,
            "timeout": timeout,
            "no_delay": True,
        }
        self._nodes = {address: _Node(address, self._pooled(address)) for address in self._servers}
        self.ring = NodeRing(self._servers, eject_after=eject_after, clock=time.monotonic)
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=pool_max * len(self._nodes), thread_name_prefix="memcached"
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._probes: set[asyncio.Task[None]] = set()
        self._probe_timers: dict[str, asyncio.TimerHandle] = {}
        self._health: dict[str, ServerHealth] = {}
        self._closed = False

    def _pooled(self, address: str) -> PooledClient:
        return PooledClient(
            _parse_server(address),
            max_pool_size=self.pool_max,
            pool_idle_timeout=60,
            **self._client_options,
        )

    @property
    def servers(self) -> list[str]:
        return list(self._servers)

    @property
    def server_health(self) -> dict[str, ServerHealth]:
        return dict(self._health)

    async def start(self) -> None:
        """Open `pool_min` connections to each node; a node that is down only means fallback."""
        self._bind_loop()
        warmups = [self._run(node, self._warm, node.client) for node in self._nodes.values()]
        await asyncio.gather(*warmups, return_exceptions=True)

    def _warm(self, client: PooledClient) -> None:
        """Hold `pool_min` pooled connections at once, so each one is really opened."""
        pool = client.client_pool
        with contextlib.ExitStack() as held:
            for _ in range(min(self.pool_min, self.pool_max)):
                held.enter_context(pool.get_and_release(destroy_on_fail=True)).version()

    async def close(self) -> None:
        self._closed = True
        for timer in self._probe_timers.values():
            timer.cancel()
        self._probe_timers.clear()
        for task in list(self._probes):
            task.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
        loop = asyncio.get_running_loop()
        for node in self._nodes.values():
            await loop.run_in_executor(None, node.client.close)

    def pool_usage(self) -> PoolUsage:
        """Count pooled connections without taking the pools' locks (a snapshot is enough)."""
        idle = used = 0
        for node in self._nodes.values():
            pool = node.client.client_pool
            used += len(pool.used)
            idle += sum(1 for c in pool.free if getattr(c, "sock", None) is not None)
        return PoolUsage(idle=idle, used=used)

    # ------------------------------------------------------------------ calls
    def _bind_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            for node in self._nodes.values():
                node.slots = asyncio.Semaphore(self.pool_max)
        return self._loop

    def _release_slot(self, slots: asyncio.Semaphore, _: concurrent.futures.Future[Any]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        # The loop may close between the check and the call.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(slots.release)

    async def _run(self, node: _Node, fn: Callable[..., T], *args: Any) -> T:
        self._bind_loop()
        slots = node.slots
        assert slots is not None
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
        except MemcacheUnexpectedCloseError as exc:  # a server that died under the call
            raise CacheBackendError("connection", str(exc) or "connection closed") from exc
        except MemcacheServerError as exc:
            raise CacheBackendError("server_error", str(exc)) from exc
        except (MemcacheError, OSError) as exc:
            raise CacheBackendError("connection", str(exc)) from exc
        finally:
            if future.done():
                slots.release()  # the thread is done: free its slot from here, no extra wake-up
            else:
                future.add_done_callback(functools.partial(self._release_slot, slots))

    async def _on_node(self, node: _Node, fn: Callable[..., T], *args: Any) -> T:
        """One call to one node, its outcome counted towards the node's place in the ring."""
        try:
            result = await self._run(node, fn, *args)
        except CacheBackendError as exc:
            self._node_failed(node.address, exc)
            raise
        self.ring.record_success(node.address)
        return result

    async def _keyed(self, key: str, method: str, *args: Any) -> Any:
        """Call `method` on the node holding `key`; once more on its new node if that one left."""
        node = self._nodes[self.ring.node_for(key)]
        try:
            result = await self._run(node, getattr(node.client, method), key, *args)
        except CacheBackendError as exc:
            if not self._node_failed(node.address, exc):
                raise
            return await self._on_node(
                (other := self._nodes[self.ring.node_for(key)]),
                getattr(other.client, method),
                key,
                *args,
            )
        self.ring.record_success(node.address)
        return result

    def _node_failed(self, address: str, exc: CacheBackendError) -> bool:
        """Count a node's failure; True if the node is out of the ring, so another may answer."""
        if exc.reason not in NODE_FAILURES:
            return False
        was_in = self.ring.nodes[address].in_ring
        out = self.ring.record_failure(address)
        if out and was_in:
            log.warning(
                "memcached node %s left the ring (%s); its keys go to the other nodes for %.1fs",
                address,
                exc,
                self.dead_timeout,
            )
            self._schedule_probe(address)
        return out

    # ------------------------------------------------------------------ rejoining
    def _schedule_probe(self, address: str) -> None:
        if self._closed:
            return
        loop = self._bind_loop()
        self._probe_timers[address] = loop.call_later(self.dead_timeout, self._start_probe, address)

    def _start_probe(self, address: str) -> None:
        self._probe_timers.pop(address, None)
        task = asyncio.get_running_loop().create_task(self._probe(address))
        self._probes.add(task)
        task.add_done_callback(self._probes.discard)

    async def _probe(self, address: str) -> None:
        node = self._nodes[address]
        try:
            await self._run(node, self._flush_fresh, address)
        except CacheBackendError:
            self._schedule_probe(address)
            return
        # The pooled connections predate the outage (a restarted server has closed them all).
        stale, node.client = node.client, self._pooled(address)
        self.ring.rejoin(address)
        log.warning("memcached node %s answered again: emptied and back in the ring", address)
        with contextlib.suppress(CacheBackendError):
            await self._run(node, stale.close)

    def _flush_fresh(self, address: str) -> None:
        """Empty the node over a new connection, so no stale pooled socket decides its fate."""
        client = Client(_parse_server(address), **self._client_options)
        try:
            client.flush_all(0, False)
        finally:
            client.close()

    # ------------------------------------------------------------------ operations
    async def get(self, key: str) -> bytes | None:
        value: bytes | None = await self._keyed(key, "get")
        return value

    async def set(self, key: str, value: bytes, ttl: int) -> bool:
        try:
            stored = await self._keyed(key, "set", value, ttl, False)
        except CacheBackendError as exc:
            # Refusing one item (over the server's -I limit) says nothing about its health.
            if exc.reason == "server_error" and "too large" in str(exc):
                return False
            raise
        return bool(stored)

    async def add(self, key: str, value: bytes, ttl: int) -> bool:
        return bool(await self._keyed(key, "add", value, ttl, False))

    async def incr(self, key: str, delta: int) -> int | None:
        value: int | None = await self._keyed(key, "incr", delta, False)
        return value

    async def delete(self, key: str) -> bool:
        return bool(await self._keyed(key, "delete", False))

    async def ping(self) -> bool:
        """True if every node answers `version` within the call timeout; each one is recorded."""
        nodes = list(self._nodes.values())
        answers = await asyncio.gather(
            *(self._run(node, node.client.version) for node in nodes), return_exceptions=True
        )
        self._health = {
            node.address: ServerHealth(
                reachable=not isinstance(answer, BaseException),
                in_ring=self.ring.nodes[node.address].in_ring,
            )
            for node, answer in zip(nodes, answers, strict=True)
        }
        for answer in answers:
            if isinstance(answer, BaseException) and not isinstance(answer, CacheBackendError):
                raise answer
        return all(health.reachable for health in self._health.values())
