"""The TCP socket under a WebSocket, as far as the app may touch it: wait for it, or abort it.

An ASGI app sees messages, never the socket, and closing one is only a request: the close frame
waits behind whatever the client has not read, and a transport's graceful close waits for that
data to be flushed, which for a client that stopped reading is never. Until then the socket keeps
megabytes in the kernel's send queue and its place among the open connections. So the server
(`app.ws.uvicorn_protocol`) hands the app a `SocketHandle` through the scope extension
`SOCKET_EXTENSION`: the app waits for `released` until its close deadline, then calls `abort()`,
which makes the kernel drop the unsent data and reset the connection at once. Under a server
without the extension the app has no handle and the server's own timers apply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, Final

#: The key in `scope["extensions"]`; its value is `{"handle": SocketHandle}` (ASGI extensions are
#: dicts).
SOCKET_EXTENSION: Final = "market_api.websocket.socket"


class SocketHandle:
    """Set up by the server per connection; `released` once the kernel socket is closed."""

    __slots__ = ("_abort", "_waiter", "released")

    def __init__(self, abort: Callable[[], None]) -> None:
        self._abort = abort
        # Created only when somebody waits: most sockets are released without anybody waiting.
        self._waiter: asyncio.Future[None] | None = None
        self.released = False

    def mark_released(self) -> None:
        """Called by the server when the connection is lost (the socket is closed)."""
        self.released = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait_released(self) -> None:
        if self.released:
            return
        if self._waiter is None:
            self._waiter = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._waiter)

    def abort(self) -> None:
        """Reset the connection now, discarding unsent data; `released` follows shortly."""
        if not self.released:
            self._abort()


def socket_handle(scope: Mapping[str, Any]) -> SocketHandle | None:
    """The handle the server offers for this connection, or None if it offers none."""
    extension = (scope.get("extensions") or {}).get(SOCKET_EXTENSION)
    handle = extension.get("handle") if isinstance(extension, Mapping) else None
    return handle if isinstance(handle, SocketHandle) else None
