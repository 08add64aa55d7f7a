"""uvicorn as `market-api` runs it: WebSockets closed by the app first, and safe against abuse.

On shutdown uvicorn closes every open WebSocket with 1012 (service restart) and waits for the
connections to end, and only then runs the app's lifespan shutdown: too late for the app to say
goodbye with 1001 (going away) and a reason. This server stops listening, then runs the app's
WebSocket shutdown, then continues with uvicorn's own.

Unless told otherwise (`Config(ws=...)`), it also runs the WebSocket protocol of
`app.ws.uvicorn_protocol`, which lets the app release sockets that will not close, reports the
close codes clients saw, and keeps invalid client input out of the error log.
"""

from __future__ import annotations

import socket

import uvicorn
from fastapi import FastAPI

from app.ws.manager import WebSocketManager
from app.ws.uvicorn_protocol import WebSocketProtocol


def websocket_manager(app: FastAPI) -> WebSocketManager | None:
    """The running app's manager, or None before start-up (or if it has none)."""
    services = getattr(app.state, "services", None)
    manager = getattr(services, "ws", None)
    return manager if isinstance(manager, WebSocketManager) else None


class GracefulServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        if config.ws == "auto":
            config.ws = WebSocketProtocol
        super().__init__(config)
        self.app = app

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        manager = websocket_manager(self.app)
        if manager is not None:
            await manager.shutdown()
        await super().shutdown(sockets)
