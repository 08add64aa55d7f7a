from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from websockets.exceptions import InvalidStatus

from app.api import websocket
from tests.app.ws.live import LiveServer, client
from tests.conftest import make_settings

pytestmark = pytest.mark.server


async def test_the_route_refuses_sockets_when_live_data_is_not_running() -> None:
    app = FastAPI()
    app.state.services = SimpleNamespace(ws=None)
    app.include_router(websocket.router)
    with (
        LiveServer(make_settings(), app=app) as server,
        pytest.raises(InvalidStatus) as refused,
    ):
        async with client(server.url):
            pass
    assert refused.value.response.status_code == 403


def test_the_route_is_a_plain_websocket_route() -> None:
    (route,) = websocket.router.routes
    assert getattr(route, "path", None) == "/ws/dashboard"
    assert type(route).__name__ == "WebSocketRoute"  # no per-socket dependency machinery
