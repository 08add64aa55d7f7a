"""The dashboard WebSocket route; the protocol is in docs/websocket.md.

A plain Starlette route rather than FastAPI's `@router.websocket`: the latter keeps a dependency
solver's exit stack and scopes alive for the socket's whole life, several kilobytes per open
socket that this route, which has no dependencies, does not need.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.websockets import WebSocket

from app.services import services_of
from app.ws.protocol import INTERNAL_ERROR, ROUTE


async def dashboard(websocket: WebSocket) -> None:
    """Live tickers, movers, market overview and alerts, by topic subscription."""
    manager = services_of(websocket).ws
    if manager is None:
        await websocket.close(INTERNAL_ERROR, "live data is not running")
        return
    await manager.serve(websocket)


router = APIRouter()
router.add_websocket_route(ROUTE, dashboard, name="dashboard")
