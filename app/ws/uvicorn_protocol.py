"""uvicorn's WebSocket protocol (the websockets sans-I/O one), made safe against hostile clients.

Three things the stock protocol gets wrong for a public endpoint:

- A text frame that is not valid UTF-8 is logged as an ERROR with a traceback, once per frame:
  any client can write tracebacks into the log. Here it closes the connection with 1007 and
  logs one line at most once a minute.
- A connection lost without a closing handshake is reported to the app as 1005 (no status),
  even when the client vanished (1006) or the server failed the connection itself (1011 on a
  keepalive timeout, which is what the client sees). Here the app is told the code the client
  saw.
- The app cannot make sure a socket goes away: a graceful close waits for unsent data forever.
  Here each connection offers a `SocketHandle` (`app.ws.release`) to the app, and a connection
  still open `close_timeout` seconds after the app returned is aborted whatever the app did.

`app.ws.server.GracefulServer` runs it in place of uvicorn's automatic choice; under a plain
uvicorn, pass `--ws app.ws.uvicorn_protocol:WebSocketProtocol`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from typing import Any, Final

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from websockets.exceptions import InvalidState
from websockets.http11 import Request

from app.ratelimit_log import RateLimitedLogger
from app.ws.release import SOCKET_EXTENSION, SocketHandle

log = logging.getLogger(__name__)
_quiet = RateLimitedLogger(log)

#: RFC 6455: "a message that is not consistent with the type of the message" (bad UTF-8 text).
INVALID_DATA: Final = 1007
ABNORMAL_CLOSURE: Final = 1006
#: SO_LINGER on, zero seconds: close() resets the connection and frees its buffers at once.
_RESET_ON_CLOSE: Final = struct.pack("ii", 1, 0)


class WebSocketProtocol(WebSocketsSansIOProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.socket_handle = SocketHandle(self.abort)
        self._abort_timer: asyncio.TimerHandle | None = None

    # ------------------------------------------------------------------ the app's handle
    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        scope = getattr(self, "scope", None)  # absent if the handshake was refused
        if scope is not None:
            extensions = scope.get("extensions")
            if extensions is not None:
                extensions[SOCKET_EXTENSION] = {"handle": self.socket_handle}

    def abort(self) -> None:
        """Reset the connection, discarding whatever the kernel still holds for the client."""
        if self.disconnected or self.transport is None:
            return
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            # OSError: already closed underneath, and abort() alone will do.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET_ON_CLOSE)
        self.transport.abort()

    def on_task_complete(self, task: asyncio.Task[None]) -> None:
        """The app is done with the connection: it must not outlive the close timeout."""
        super().on_task_complete(task)
        if not self.disconnected and self._abort_timer is None:
            self._abort_timer = self.loop.call_later(self.close_timeout, self.abort)

    # ------------------------------------------------------------------ close codes
    def connection_lost(self, exc: Exception | None) -> None:
        """As uvicorn's, but the app is told the close code the client saw."""
        self.stop_keepalive()
        self.queue.put_nowait({"type": "websocket.disconnect", "code": self._lost_code()})
        self.connections.discard(self)
        self.handshake_complete = True
        self.disconnected = True
        # A send() waiting for the buffer to drain would wait forever: it never drains now.
        self.writable.set()
        for timer in (self.close_timer, self._abort_timer):
            if timer is not None:
                timer.cancel()
        self.close_timer = self._abort_timer = None
        self.socket_handle.mark_released()
        if exc is None:
            self.transport.close()

    def _lost_code(self) -> int:
        if not self.handshake_complete:
            return ABNORMAL_CLOSURE
        received, sent = self.conn.close_rcvd, self.conn.close_sent
        if received is not None:  # a closing handshake the client started or answered
            return int(received.code)
        if sent is not None:  # the server failed the connection (keepalive, protocol error)
            return int(sent.code)
        return ABNORMAL_CLOSURE  # gone without a close frame either way

    # ------------------------------------------------------------------ inbound text
    def send_receive_event_to_app(self) -> None:
        """As uvicorn's, but invalid UTF-8 closes with 1007 quietly instead of a traceback."""
        frames = self.frames
        data = frames[0] if len(frames) == 1 else b"".join(frames)
        self.frames = []
        if self.close_sent:
            # Past the app's close: discard, and keep reading until the client's close arrives.
            return
        if self.curr_msg_data_type == "text":
            try:
                text = data.decode()
            except UnicodeDecodeError:
                self._invalid_utf8()
                return
            self.queue.put_nowait({"type": "websocket.receive", "text": text})
        else:
            self.queue.put_nowait({"type": "websocket.receive", "bytes": data})
        if not self.read_paused:
            self.read_paused = True
            self.transport.pause_reading()

    def _invalid_utf8(self) -> None:
        _quiet.warning(
            "invalid-utf8",
            "closed a WebSocket with 1007 from %s: a text frame was not valid UTF-8",
            self.client[0] if self.client else "an unknown client",
        )
        try:
            self.conn.send_close(INVALID_DATA, "text frame is not valid UTF-8")
        except InvalidState:  # already closing: nothing more to tell the client
            self.transport.close()
            return
        self.handle_parser_exception()
