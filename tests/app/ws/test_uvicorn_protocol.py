"""The WebSocket protocol market-api runs: how it is chosen, and its own last-resort abort."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI, WebSocket

from app.ws.release import SOCKET_EXTENSION, SocketHandle, socket_handle
from app.ws.server import GracefulServer
from app.ws.uvicorn_protocol import WebSocketProtocol
from tests.app.ws.kernel import held_by_server
from tests.app.ws.live import PADDING, LiveServer, small_receive_buffer_socket, until
from tests.app.ws.rawclient import handshake
from tests.conftest import make_settings


def test_graceful_server_runs_it_unless_told_otherwise() -> None:
    app = FastAPI()
    auto = uvicorn.Config(app)
    GracefulServer(auto, app)
    assert auto.ws is WebSocketProtocol
    chosen = uvicorn.Config(app, ws="wsproto")
    GracefulServer(chosen, app)
    assert chosen.ws == "wsproto"


def test_a_plain_uvicorn_loads_it_by_name() -> None:
    config = uvicorn.Config(FastAPI(), ws="app.ws.uvicorn_protocol:WebSocketProtocol")
    config.load()
    assert config.ws_protocol_class is WebSocketProtocol


@pytest.mark.parametrize(
    "scope",
    [{}, {"extensions": None}, {"extensions": {SOCKET_EXTENSION: "x"}}, {"extensions": {}}],
)
def test_no_handle_without_the_extension(scope: dict[str, Any]) -> None:
    assert socket_handle(scope) is None


async def test_handle_wakes_waiters_and_aborts_only_while_open() -> None:
    aborted: list[bool] = []
    handle = SocketHandle(lambda: aborted.append(True))
    scope = {"extensions": {SOCKET_EXTENSION: {"handle": handle}}}
    assert socket_handle(scope) is handle
    waiter = asyncio.create_task(handle.wait_released())
    await asyncio.sleep(0)
    handle.abort()
    assert aborted == [True]
    assert not waiter.done()
    handle.mark_released()
    await asyncio.wait_for(waiter, 1)
    handle.abort()
    assert aborted == [True]  # released: nothing left to abort
    await asyncio.wait_for(handle.wait_released(), 1)


class QuickProtocol(WebSocketProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.close_timeout = 0.5


@pytest.mark.server
async def test_a_connection_the_app_left_open_is_aborted_after_the_close_timeout() -> None:
    """An app that ignores the handle and returns while data is still queued for a client that
    does not read: uvicorn's graceful close would wait for that client forever."""
    app = FastAPI()
    finished = threading.Event()

    @app.websocket("/ws/dashboard")
    async def careless(websocket: WebSocket) -> None:
        await websocket.accept()
        try:
            async with asyncio.timeout(1.0):
                while True:
                    await websocket.send_text(PADDING)
        except TimeoutError:
            pass
        finished.set()

    with LiveServer(make_settings(), app=app, ws=QuickProtocol) as server:
        _, writer = await handshake(server.port, small_receive_buffer_socket(server.port))
        port = writer.get_extra_info("sockname")[1]
        try:
            (held,) = held_by_server(server.port, {port})
            assert held.state == "ESTABLISHED"

            async def app_returned() -> bool:
                return finished.is_set()

            await until(app_returned)
            (held,) = held_by_server(server.port, {port})
            assert held.send_queue > 0

            async def released() -> bool:
                return not held_by_server(server.port, {port})

            await until(released, timeout=0.5 + 1.5)
        finally:
            writer.transport.abort()
