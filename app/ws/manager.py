"""The WebSocket connection manager: sessions, limits, the idle sweep and graceful shutdown.

The server's task for each accepted socket reads the client's frames; one more task per socket,
its writer, drains the socket's bounded queue, so a client that stops reading blocks only its
own writer. When the session is to end, the task stops the writer, closes the socket with the
right code, waits for the socket to be released (aborting it at the close deadline, see
`app.ws.release`), and only then removes every trace of it: until the kernel lets go of a
socket, it counts toward the connection limit.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
import traceback
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketDisconnected

from app.ratelimit_log import RateLimitedLogger
from app.ws.config import WebSocketConfig
from app.ws.connection import Connection
from app.ws.inbound import InboundHandler, close_reason
from app.ws.instrumentation import (
    NoopWebSocketInstrumentation,
    WebSocketInstrumentation,
    WebSocketOpScope,
)
from app.ws.protocol import GOING_AWAY, INTERNAL_ERROR, NORMAL, ROUTE, TRY_AGAIN_LATER
from app.ws.registry import Registry
from app.ws.release import SocketHandle, socket_handle
from app.ws.stats import WebSocketStats, bounded_close_code
from app.ws.topics import TopicCatalog

log = logging.getLogger(__name__)

#: What a socket the server can no longer write to raises from `send` / `close`.
_GONE = (WebSocketDisconnect, WebSocketDisconnected, OSError)
#: Seconds an aborted socket may take to be reported closed (the server does it on its next
#: loop iteration).
_ABORT_GRACE = 1.0


class WebSocketManager:
    """Registry of dashboard sockets and their subscriptions; `broadcast` fans out to them."""

    def __init__(
        self,
        config: WebSocketConfig,
        catalog: TopicCatalog,
        *,
        instrumentation: WebSocketInstrumentation | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.instrumentation: WebSocketInstrumentation = (
            instrumentation or NoopWebSocketInstrumentation()
        )
        self.stats = WebSocketStats()
        self.registry = Registry(
            self.stats,
            slow_consumer_timeout=config.slow_consumer_timeout,
            close_timeout=config.close_timeout,
            clock=clock,
        )
        self._inbound = InboundHandler(self.registry, catalog, config, self.instrumentation)
        self._clock = clock
        self._ids = itertools.count(1)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sweeper: asyncio.Task[None] | None = None
        self._shutdown: asyncio.Task[None] | None = None
        self._drained = asyncio.Event()
        self._warn = RateLimitedLogger(log)
        self._relay: Callable[[str, Any], None] | None = None
        #: With several replicas: their state for the performance summary (`Fleet.status`).
        self.fleet_status: Callable[[], dict[str, Any]] | None = None

    # ------------------------------------------------------------------ public API
    @property
    def accepting(self) -> bool:
        return self._shutdown is None

    @property
    def tasks(self) -> int:
        """Writer tasks alive right now (one per open session)."""
        return len(self._tasks)

    def broadcast(self, topic: str, data: Any) -> int:
        """Send `{"topic": topic, "data": data}` to every subscriber of `topic`; never waits.

        Serialized once; each subscriber's queue drops its oldest update when full. Returns the
        number of local subscribers reached (0 for a topic nobody subscribed to, at the cost of
        a dict lookup). With a relay (several replicas), the update is also handed to it for the
        other replicas' subscribers (serialized once more, as the Redis message). Raises
        TypeError if `data` is not JSON-serializable.
        """
        reached = self.registry.broadcast(topic, data)
        if self._relay is not None:
            self._relay(topic, data)
        return reached

    def deliver(self, topic: str, data: Any) -> int:
        """`broadcast` to this replica's subscribers only: an update another replica broadcast,
        or a snapshot from a feed publishing for this replica alone (Redis unreachable)."""
        return self.registry.broadcast(topic, data)

    def relay_to(self, relay: Callable[[str, Any], None] | None) -> None:
        """Hand every later `broadcast` to `relay` too (`RedisBroker.publish`); None stops it.
        The relay must not deliver back to this replica: `broadcast` already did."""
        self._relay = relay

    def active_topics(self) -> tuple[str, ...]:
        """Topics with at least one local subscriber."""
        return self.registry.active_topics()

    def latest(self, topic: str) -> Any:
        return self.registry.latest(topic)

    async def start(self) -> None:
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="ws-sweeper")

    async def close(self) -> None:
        """Shut down (if not done yet) and stop the sweeper; for the app's lifespan teardown."""
        await self.shutdown()
        if self._sweeper is not None:
            self._sweeper.cancel()
            await asyncio.wait([self._sweeper])
            self._sweeper = None

    async def shutdown(self) -> None:
        """Stop accepting, close every socket with 1001 and end every session's tasks.

        Returns within `shutdown_timeout` (plus scheduling): a session whose close frame cannot
        get out (client not reading) gives up after min(close timeout, shutdown timeout). Safe to
        call more than once and concurrently; later calls wait for the first.
        """
        if self._shutdown is None:
            self._shutdown = asyncio.create_task(self._close_all(), name="ws-shutdown")
        await asyncio.shield(self._shutdown)

    # ------------------------------------------------------------------ sessions
    async def serve(self, websocket: WebSocket) -> None:
        """Run one client's session from handshake to the last trace of it."""
        scope = self.instrumentation.connect(ROUTE)
        if self._shutdown is not None:
            await self._turn_away(
                websocket, scope, GOING_AWAY, "server shutting down", "shutting_down"
            )
            return
        if len(self.registry) >= self.config.max_connections:
            reason = f"connection limit reached ({self.config.max_connections}); try again later"
            await self._turn_away(websocket, scope, TRY_AGAIN_LATER, reason, "connection_limit")
            return

        # Registered before the handshake's await, so concurrent arrivals see the slot taken.
        conn = Connection(next(self._ids), websocket, self.config.queue_size, self._clock())
        conn.socket = socket_handle(websocket.scope)
        self.registry.add(conn)
        try:
            await websocket.accept()
        except BaseException as exc:
            self.registry.remove(conn)
            scope.finish("handshake_failed")
            if isinstance(exc, _GONE):
                return
            raise
        scope.finish()
        self.stats.connections_accepted += 1

        conn.session = asyncio.current_task()
        try:
            conn.writer = self._spawn(self._write(conn), conn, "writing to a client")
            await self._read(conn)
            await self._end(conn)
        finally:
            self._release(conn)
            self._report_end(conn)

    def _report_end(self, conn: Connection) -> None:
        """Count the close and tell the hooks, once: as soon as the close is done on the
        protocol's side, even if the socket itself takes until the deadline to go."""
        if conn.reported:
            return
        conn.reported = True
        code = bounded_close_code(conn.final_code)  # a label: peers may pick any code
        self.stats.record_close(code)
        self.instrumentation.disconnect(ROUTE, code, self._clock() - conn.connected_at)

    async def _read(self, conn: Connection) -> None:
        """Handle client frames until the session is to end, for whatever reason.

        While the replies to earlier frames wait to be sent, no frame is read (backpressure): a
        client sending requests faster than it reads the answers is slowed down, not closed,
        unless its writer gets nothing out for the slow-consumer timeout.
        """
        receive = conn.websocket.receive
        handle = self._inbound.handle
        outbox = conn.outbox
        conn.reading = True
        try:
            while not conn.closing:
                if outbox.control_full:
                    if outbox.full_since is None:
                        outbox.full_since = self._clock()
                    await outbox.room()
                    continue
                message = await receive()
                if message["type"] == "websocket.disconnect":
                    conn.peer_gone(int(message.get("code") or 1005))
                    return
                try:
                    await handle(conn, message, self._clock())
                except Exception as exc:
                    self._failed(conn, "handling a client frame", exc)
        except asyncio.CancelledError:
            # Interrupted by `request_close`, the read loop is simply over; any other
            # cancellation (the server's) goes on.
            session = conn.session
            if not conn.interrupted or session is None or session.uncancel() > 0:
                raise
        finally:
            conn.reading = False

    async def _write(self, conn: Connection) -> None:
        """Send queued frames, replies first, until cancelled or the socket is gone.

        A failed send ends the writer quietly: the server then reports the disconnect (with the
        peer's own close code) to the read loop, which ends the session.
        """
        outbox = conn.outbox
        send = conn.websocket.send
        sent = self.stats.messages_sent
        try:
            while True:
                item = outbox.pop()
                if item is None:
                    await outbox.wait()
                    continue
                await send(item.message)
                sent[item.family] += 1
        except _GONE:
            return

    async def _end(self, conn: Connection) -> None:
        """Stop the writer; if the server is the one closing, send the close frame. Either way,
        the socket is released by the close deadline."""
        server_closes = conn.close_code is not None
        timeout = conn.close_timeout if server_closes else self.config.close_timeout
        deadline = asyncio.get_running_loop().time() + timeout
        writer = conn.writer
        if writer is not None and not writer.done():
            writer.cancel()
            await asyncio.wait([writer])
        if conn.close_code is not None:
            try:
                async with asyncio.timeout_at(deadline):
                    await conn.websocket.close(conn.close_code, conn.close_reason)
            except TimeoutError:
                self._warn.warning(
                    "close-timeout",
                    "gave up sending a WebSocket close frame (%d) after %.1f s: the client is "
                    "not reading; resetting the connection",
                    conn.close_code,
                    timeout,
                )
            except _GONE:
                pass
        self._report_end(conn)
        await self._let_go(conn.socket, deadline)

    async def _let_go(self, socket: SocketHandle | None, deadline: float) -> None:
        """Wait for the socket to be released (closing handshake done, or the client gone);
        at `deadline`, abort it: the kernel drops what the client never read."""
        if socket is None or socket.released:
            return
        try:
            async with asyncio.timeout_at(deadline):
                await socket.wait_released()
            return
        except TimeoutError:
            pass
        socket.abort()
        try:
            async with asyncio.timeout(_ABORT_GRACE):
                await socket.wait_released()
        except TimeoutError:
            log.warning("a WebSocket was aborted but not reported closed")

    def _release(self, conn: Connection) -> None:
        """Synchronous, so it completes even when the handler is being cancelled."""
        if conn.writer is not None and not conn.writer.done():
            conn.writer.cancel()
        if conn.socket is not None:
            conn.socket.abort()  # a no-op once released; else the session was cut short
        self.registry.remove(conn)
        if self._shutdown is not None and not len(self.registry):
            self._drained.set()

    async def _turn_away(
        self, websocket: WebSocket, scope: WebSocketOpScope, code: int, reason: str, error: str
    ) -> None:
        """Accept, then close at once with `code` and a reason a client can show or act on:
        a refused handshake would only tell the client "403"."""
        self.stats.connections_rejected += 1
        scope.finish(error)
        socket = socket_handle(websocket.scope)
        deadline = asyncio.get_running_loop().time() + self.config.close_timeout
        try:
            await websocket.accept()
            async with asyncio.timeout_at(deadline):
                await websocket.close(code, close_reason(reason))
        except (*_GONE, TimeoutError):
            pass
        else:
            self.stats.record_close(code)
        try:
            await self._let_go(socket, deadline)
        finally:
            if socket is not None:
                socket.abort()  # a no-op once released; else cut short by cancellation

    def _spawn(
        self, coro: Coroutine[Any, Any, None], conn: Connection, name: str
    ) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(partial(self._task_done, conn))
        return task

    def _task_done(self, conn: Connection, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._failed(conn, task.get_name(), exc)

    def _failed(self, conn: Connection, what: str, exc: BaseException) -> None:
        """A bug, not a client's doing: log it with its traceback, close the socket with 1011."""
        self._warn.warning(
            f"failed:{what}",
            "WebSocket session failed while %s; closing it with 1011:\n%s",
            what,
            "".join(traceback.format_exception(exc)),
        )
        conn.request_close(INTERNAL_ERROR, "internal error", self.config.close_timeout)

    # ------------------------------------------------------------------ housekeeping
    def sweep(self) -> int:
        """Close idle sockets (1000) and stuck slow consumers (1013); returns how many.

        Run every `cleanup_interval` seconds. Each closed session's handler then removes every
        trace of it (registry, subscriptions, queue, tasks).
        """
        now = self._clock()
        closed = 0
        for conn in self.registry.connections():
            if conn.closing:
                continue
            if self.registry.is_stuck(conn, now):
                self.registry.close_slow_consumer(conn)
                closed += 1
            elif now - conn.last_seen >= self.config.idle_timeout:
                conn.request_close(NORMAL, "idle timeout", self.config.close_timeout)
                closed += 1
        return closed

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.config.cleanup_interval)
            try:
                self.sweep()
            except Exception:
                log.exception("WebSocket sweep failed; retrying next interval")

    async def _close_all(self) -> None:
        timeout = self.config.shutdown_timeout
        close_timeout = min(self.config.close_timeout, timeout)
        for conn in self.registry.connections():
            conn.request_close(GOING_AWAY, "server shutting down", close_timeout)
        if not len(self.registry):
            return
        try:
            async with asyncio.timeout(timeout):
                await self._drained.wait()
        except TimeoutError:
            left = self.registry.connections()
            log.warning("%d WebSocket sessions still open after %.1f s", len(left), timeout)
            for conn in left:
                self._release(conn)
