"""uvicorn's httptools protocol with a size and a time limit on every request head.

httptools accepts a header of any size and any number of headers, buffering the unfinished one
in memory, and uvicorn never times out a head that is still arriving (its keep-alive timer stops
at the first byte). One client could make the server hold gigabytes, or keep a socket and a file
descriptor for ever by sending a byte now and then. h11 has `h11_max_incomplete_event_size`;
httptools has nothing, so this subclass counts the bytes fed to the parser while a head is open
and checks a deadline per connection:

- more than `max_head_bytes` before the head ends: at most that much is parsed, the client gets
  431 with a JSON body and a closed write side, whatever else it sends is read and dropped for a
  moment (so the kernel does not reset the connection before the 431 is read), then it is closed;
- a head not complete `head_timeout` seconds after the connection opened, or after the first
  byte of a later request on it, closes the connection.

The cost on the hot path is a counter and a flag per read, and one clock read per request; the
deadline is one timer per connection, re-armed once per `head_timeout`, never per request.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Final

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from app.ratelimit_log import RateLimitedLogger

log = logging.getLogger(__name__)
_warn = RateLimitedLogger(log)

LINGER_SECONDS: Final = 1.0
"""How long a refused connection's further input is read and dropped before it is closed."""


class LimitedHttpToolsProtocol(HttpToolsProtocol):
    """Set the limits on a subclass (`limited_http_protocol`); uvicorn builds one per connection."""

    max_head_bytes: int = 16 * 1024
    head_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_open = True
        self._head_bytes = 0
        self._head_started = 0.0  # loop time of the current head's first byte; 0: none yet
        self._head_timer: asyncio.TimerHandle | None = None
        self._refused = False
        self._upgraded = False

    # ------------------------------------------------------------------ connection
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_started = self.loop.time()  # a silent client's clock starts now
        self._head_timer = self.loop.call_later(self.head_timeout, self._check_head_deadline)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        super().connection_lost(exc)

    def handle_websocket_upgrade(self) -> None:
        # The WebSocket protocol takes the transport over and has its own timeouts.
        self._cancel_head_timer()
        self._upgraded = True
        super().handle_websocket_upgrade()

    def data_received(self, data: bytes) -> None:
        if self._head_open:
            if not self._head_started:
                self._head_started = self.loop.time()
            self._head_bytes += len(data)
            if self._head_bytes > self.max_head_bytes:
                self._feed_within_limit(data)
                return
        super().data_received(data)

    # ------------------------------------------------------------------ parser callbacks
    def on_headers_complete(self) -> None:
        self._head_open = False
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        # Whatever follows on this connection is the next request's head.
        self._head_open = True
        self._head_bytes = 0
        self._head_started = 0.0

    # ------------------------------------------------------------------ limits
    def _feed_within_limit(self, data: bytes) -> None:
        """The slow path: `data` takes the open head past the limit (or it was refused)."""
        if self._refused:
            return  # lingering: read and dropped
        fits = len(data) - (self._head_bytes - self.max_head_bytes)
        if fits > 0:
            # The head may still end within the limit, with a body or the next request after it.
            self._head_bytes -= len(data) - fits
            super().data_received(data[:fits])
            if self.transport.is_closing() or self._upgraded:
                return
            if not self._head_open or self._head_bytes == 0:
                self.data_received(data[fits:])
                return
        self._refuse_head()

    def _refuse_head(self) -> None:
        self._refused = True
        self._cancel_head_timer()
        _warn.warning(
            "head-size",
            "request head over %d bytes from %s: answered 431 and closed",
            self.max_head_bytes,
            self.client[0] if self.client else "unknown",
        )
        body = orjson.dumps(
            {
                "error": "request_header_fields_too_large",
                "detail": f"the request line and headers exceed {self.max_head_bytes} bytes",
            }
        )
        head = [STATUS_LINE[431]]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.append(
            b"content-type: application/json\r\ncontent-length: %d\r\nconnection: close\r\n\r\n"
            % len(body)
        )
        transport = self.transport
        transport.write(b"".join(head) + body)
        if transport.can_write_eof():
            transport.write_eof()
            self._head_timer = self.loop.call_later(LINGER_SECONDS, transport.close)
        else:
            transport.close()

    def _check_head_deadline(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        started = self._head_started
        if self._head_open and started:
            late = self.loop.time() - started
            if late >= self.head_timeout:
                _warn.warning(
                    "head-timeout",
                    "request head from %s not complete after %.1f s: connection closed",
                    self.client[0] if self.client else "unknown",
                    late,
                )
                self.transport.close()
                return
            delay = self.head_timeout - late
        else:
            delay = self.head_timeout
        self._head_timer = self.loop.call_later(delay, self._check_head_deadline)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None


def limited_http_protocol(
    max_head_bytes: int, head_timeout: float
) -> type[LimitedHttpToolsProtocol]:
    """The protocol class to give uvicorn as `http=`, with these limits."""

    class ConfiguredHttpToolsProtocol(LimitedHttpToolsProtocol):
        pass

    ConfiguredHttpToolsProtocol.max_head_bytes = max_head_bytes
    ConfiguredHttpToolsProtocol.head_timeout = head_timeout
    return ConfiguredHttpToolsProtocol
