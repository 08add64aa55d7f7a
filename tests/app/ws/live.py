"""The app under a real uvicorn (GracefulServer) in a background thread, and WebSocket clients.

An in-thread server lets a test reach into the running loop: publish through the manager, read
its registry, count the loop's tasks. Clients are real `websockets` clients on loopback. Helpers
take a `timeout` (a liveness bound) like the asyncio functions they wrap; other test packages
use them too.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

import orjson
import uvicorn
from fastapi import FastAPI
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from app.main import create_app
from app.services import Services
from app.settings import Settings
from app.upstream.client import ExchangeClient
from app.ws.connection import Connection
from app.ws.manager import WebSocketManager
from app.ws.server import GracefulServer
from devstack.process import free_port

T = TypeVar("T")
PADDING = "x" * 32_000


class LiveServer:
    def __init__(
        self,
        settings: Settings,
        *,
        app: FastAPI | None = None,
        upstream: ExchangeClient | None = None,
        ws_max_size: int | None = None,
        **uvicorn_options: Any,
    ) -> None:
        self.app = app or create_app(settings, upstream=upstream)
        self.port = free_port()
        config = uvicorn.Config(
            self.app,
            host="127.0.0.1",
            port=self.port,
            lifespan="on",
            log_level="warning",
            ws_max_size=ws_max_size or settings.ws_max_message_bytes,
            ws_per_message_deflate=False,  # as app/cli.py runs it
            **uvicorn_options,
        )
        self.server = GracefulServer(config, self.app)
        self._loop_factory = config.get_loop_factory() or asyncio.new_event_loop
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, name="live-server", daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws/dashboard"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def services(self) -> Services:
        services: Services = self.app.state.services
        return services

    @property
    def manager(self) -> WebSocketManager:
        manager = self.services.ws
        assert manager is not None
        return manager

    def _run(self) -> None:
        loop = self._loop_factory()
        self.loop = loop
        try:
            loop.run_until_complete(self.server.serve())
        finally:
            loop.close()

    def start(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the live server did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self.server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"the live server did not stop within {timeout} s")

    async def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:  # noqa: ASYNC109
        """Run `coro` on the server's loop and await its result from the test's loop."""
        assert self.loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return await asyncio.wait_for(asyncio.wrap_future(future), timeout)

    async def call(self, fn: Callable[[], T]) -> T:
        """Call `fn` on the server's loop (state is only ever touched from there)."""

        async def wrapper() -> T:
            return fn()

        return await self.run(wrapper())

    async def loop_tasks(self) -> int:
        async def count() -> int:
            return len(asyncio.all_tasks()) - 1  # this counting task itself

        return await self.run(count())

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():
            self.stop()


@contextlib.asynccontextmanager
async def client(url: str, **kwargs: Any) -> AsyncIterator[ClientConnection]:
    async with connect(url, compression=None, open_timeout=10, **kwargs) as ws:
        yield ws


async def send_json(ws: ClientConnection, payload: Any) -> None:
    await ws.send(orjson.dumps(payload).decode())


async def recv_json(ws: ClientConnection, timeout: float = 10.0) -> dict[str, Any]:  # noqa: ASYNC109
    raw = await asyncio.wait_for(ws.recv(), timeout)
    body: dict[str, Any] = orjson.loads(raw)
    return body


async def recv_op(
    ws: ClientConnection,
    op: str,
    timeout: float = 10.0,  # noqa: ASYNC109
) -> dict[str, Any]:
    """The next control frame with `op`, skipping topic updates in between."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        remaining = deadline - asyncio.get_running_loop().time()
        body = await recv_json(ws, max(remaining, 0.001))
        if body.get("op") == op:
            return body
        assert "topic" in body, f"expected {op!r} or an update, got {body}"


async def subscribe(ws: ClientConnection, *topics: str) -> dict[str, Any]:
    await send_json(ws, {"op": "subscribe", "topics": list(topics)})
    ack = await recv_op(ws, "ack")
    assert ack["request"] == "subscribe", ack
    return ack


async def wait_closed(
    ws: ClientConnection,
    timeout: float = 15.0,  # noqa: ASYNC109
) -> tuple[int | None, str]:
    """Read (and discard) until the server closes; the close code and reason it sent."""

    async def drain() -> None:
        with contextlib.suppress(ConnectionClosed):
            async for _ in ws:
                pass

    await asyncio.wait_for(drain(), timeout)
    return ws.close_code, ws.close_reason or ""


async def until(
    condition: Callable[[], Awaitable[bool]],
    timeout: float = 10.0,  # noqa: ASYNC109
    interval: float = 0.02,
) -> None:
    """Poll `condition` until true; a generous liveness bound, never a measured duration."""
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)


def small_receive_buffer_socket(port: int, size: int = 4096) -> socket.socket:
    """A connected TCP socket with a tiny receive window: a client that stops reading fills
    the server's buffers after a few kilobytes instead of a few megabytes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def publish(
    manager: WebSocketManager, plan: list[tuple[str, dict[str, Any]]], every: int, pause: float
) -> None:
    """Broadcast `plan` in order, pausing `pause` s after every `every` messages."""
    for i, (topic, data) in enumerate(plan, 1):
        manager.broadcast(topic, data)
        if i % every == 0:
            await asyncio.sleep(pause)


async def stall(server: LiveServer) -> tuple[ClientConnection, Connection]:
    """A client that subscribes and then never reads, with the server's buffers for it full:
    its writer is blocked and its queue is dropping updates."""
    sock = small_receive_buffer_socket(server.port)
    ws = await connect(server.url, sock=sock, compression=None, max_queue=1)
    await subscribe(ws, "alerts", "tickers.ETHUSDT")
    manager = server.manager

    def find() -> Connection:
        (conn,) = (c for c in manager.registry.connections() if "tickers.ETHUSDT" in c.topics)
        return conn

    conn = await server.call(find)
    fill = [("tickers.ETHUSDT", {"seq": i, "pad": PADDING}) for i in range(400)]
    await server.run(publish(manager, fill, every=1, pause=0))

    async def dropping() -> bool:
        return await server.call(lambda: conn.outbox.full_since is not None)

    await until(dropping)
    return ws, conn
