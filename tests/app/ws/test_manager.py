"""The manager's contract with telemetry hooks, and what happens when handling a frame fails."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest
from fastapi import FastAPI, WebSocket

from app.ws.config import WebSocketConfig
from app.ws.instrumentation import WebSocketOpScope
from app.ws.manager import WebSocketManager
from app.ws.protocol import ROUTE
from app.ws.stats import OTHER_CLOSE_CODE
from app.ws.topics import TopicCatalog
from tests.app.ws.live import LiveServer, client, recv_op, send_json, subscribe, until, wait_closed
from tests.conftest import make_settings

pytestmark = pytest.mark.server
Event = tuple[Any, ...]


class Scope:
    def __init__(self, events: list[Event], what: Event) -> None:
        self.events = events
        self.what = what

    def finish(self, error: str | None = None) -> None:
        self.events.append((*self.what, error))


class Recorder:
    """Records every hook call as a tuple, the scope's outcome last."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def connect(self, route: str) -> WebSocketOpScope:
        return Scope(self.events, ("connect", route))

    def inbound(self, route: str, op: str, topic_family: str | None) -> WebSocketOpScope:
        return Scope(self.events, ("inbound", route, op, topic_family))

    def disconnect(self, route: str, close_code: int, duration_s: float) -> None:
        self.events.append(("disconnect", route, close_code, duration_s))


async def ticker_map() -> Mapping[str, Any]:
    return {"BTCUSDT": {}}


async def broken_ticker_map() -> Mapping[str, Any]:
    raise RuntimeError("a bug in the ticker snapshot")


@asynccontextmanager
async def served(
    recorder: Recorder, config: WebSocketConfig, catalog: TopicCatalog
) -> AsyncIterator[LiveServer]:
    """A bare app around one manager, under the same server as production."""
    manager = WebSocketManager(config, catalog, instrumentation=recorder)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await manager.start()
        app.state.services = SimpleNamespace(ws=manager)
        yield
        await manager.close()

    app = FastAPI(lifespan=lifespan)

    @app.websocket(ROUTE)
    async def route(websocket: WebSocket) -> None:
        await manager.serve(websocket)

    with LiveServer(make_settings(), app=app) as server:

        async def settled() -> bool:
            return await server.call(lambda: len(manager.registry) == 0)

        yield server
        await until(settled)


async def test_hooks_see_each_socket_and_each_frame_once() -> None:
    recorder = Recorder()
    config = WebSocketConfig(max_connections=1)
    async with (
        served(recorder, config, TopicCatalog(ticker_map)) as server,
        client(server.url) as ws,
    ):
        await subscribe(ws, "tickers.btcusdt")
        await send_json(ws, {"op": "subscribe", "topics": ["tickers.ETHUSDT", "tickers.X1"]})
        await recv_op(ws, "error")
        await send_json(ws, {"op": "ping"})
        await recv_op(ws, "pong")
        await ws.send("{bad")
        await recv_op(ws, "error")
        await send_json(ws, {"op": "unsubscribe", "topics": ["tickers.BTCUSDT", "alerts"]})
        await recv_op(ws, "ack")
        async with client(server.url) as refused:
            assert (await wait_closed(refused))[0] == 1013
    disconnect = recorder.events.pop()
    assert disconnect[:3] == ("disconnect", ROUTE, 1000)
    assert disconnect[3] > 0
    assert recorder.events == [
        ("connect", ROUTE, None),
        ("inbound", ROUTE, "subscribe", "tickers", None),
        ("inbound", ROUTE, "subscribe", "tickers", "unknown_topic"),
        ("inbound", ROUTE, "ping", None, None),
        ("inbound", ROUTE, "invalid", None, "malformed_json"),
        ("inbound", ROUTE, "unsubscribe", None, None),
        ("connect", ROUTE, "connection_limit"),  # turned away: no disconnect hook
    ]


async def test_a_failure_while_handling_a_frame_closes_with_1011(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "app.ws.manager")
    recorder = Recorder()
    async with served(recorder, WebSocketConfig(), TopicCatalog(broken_ticker_map)) as server:
        async with client(server.url) as ws:
            await subscribe(ws, "alerts")
            await send_json(ws, {"op": "subscribe", "topics": ["tickers.BTCUSDT"]})
            assert await wait_closed(ws) == (1011, "internal error")
        async with client(server.url) as again:  # the server itself is fine
            await subscribe(again, "alerts")
    assert ("inbound", ROUTE, "subscribe", "tickers", "RuntimeError") in recorder.events
    codes = [e[2] for e in recorder.events if e[0] == "disconnect"]
    assert codes == [1011, 1000]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "a bug in the ticker snapshot" in logged
    assert "Traceback" in logged


async def test_close_codes_a_peer_picks_are_counted_in_a_bounded_set() -> None:
    recorder = Recorder()
    async with served(recorder, WebSocketConfig(), TopicCatalog(ticker_map)) as server:
        for code in (4321, 3999, 1000):
            async with client(server.url) as ws:
                await subscribe(ws, "alerts")
                await ws.close(code)
    codes = [e[2] for e in recorder.events if e[0] == "disconnect"]
    assert codes == [OTHER_CLOSE_CODE, OTHER_CLOSE_CODE, 1000]
    assert server.manager.stats.closed == {OTHER_CLOSE_CODE: 2, 1000: 1}
