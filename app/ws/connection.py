"""One client socket: its queue, its subscriptions and how its session is to end.

A session ends once, for the first of three reasons: the server decides to close it
(`request_close`: idle, slow consumer, repeated bad frames, shutdown, a failure), the peer goes
away (`peer_gone`), or the server's task for the socket is cancelled. The session task reads
client frames itself; when something else closes the socket, it is interrupted where it waits
(`interrupted` tells that cancellation from any other), so an idle socket costs one extra task,
its writer, and not two.
"""

from __future__ import annotations

import asyncio

from starlette.websockets import WebSocket

from app.ws.outbox import Outbox
from app.ws.release import SocketHandle


class Connection:
    __slots__ = (
        "close_code",
        "close_reason",
        "close_timeout",
        "closing",
        "connected_at",
        "id",
        "interrupted",
        "invalid_frames",
        "last_seen",
        "outbox",
        "peer_code",
        "reading",
        "reported",
        "session",
        "socket",
        "topics",
        "websocket",
        "writer",
    )

    def __init__(self, conn_id: int, websocket: WebSocket, queue_size: int, now: float) -> None:
        self.id = conn_id
        self.websocket = websocket
        self.outbox = Outbox(queue_size)
        #: Subscribed topics, in subscription order.
        self.topics: dict[str, None] = {}
        self.connected_at = now
        #: Clock reading of the last valid frame from the client: what the idle timeout measures.
        self.last_seen = now
        self.invalid_frames = 0
        #: True from the moment the session is to end, whoever decided it.
        self.closing = False
        #: Set when the server decided to close: the code and reason to send.
        self.close_code: int | None = None
        self.close_reason = ""
        #: Seconds the close frame may take to get out (a client that does not read never takes it).
        self.close_timeout = 0.0
        #: Set when the peer or the protocol layer ended the socket: the code it reported.
        self.peer_code: int | None = None
        #: The server's task running this session, and whether it is in its read loop.
        self.session: asyncio.Task[None] | None = None
        self.reading = False
        #: Whether the session task was cancelled by `request_close` (not by the server).
        self.interrupted = False
        self.writer: asyncio.Task[None] | None = None
        #: Whether the end of the session was counted and reported to the hooks.
        self.reported = False
        #: The server's handle on the TCP socket, if it offers one: the session ends only once
        #: the socket is released, or aborted at the close deadline.
        self.socket: SocketHandle | None = None

    def __repr__(self) -> str:
        return f"<Connection {self.id} topics={len(self.topics)} queued={len(self.outbox)}>"

    def request_close(self, code: int, reason: str, timeout: float) -> bool:
        """Ask the session to close with `code`; False if it is already ending."""
        if self.closing:
            return False
        self.closing = True
        self.close_code = code
        self.close_reason = reason
        self.close_timeout = timeout
        self._interrupt()
        return True

    def peer_gone(self, code: int) -> None:
        """The socket is gone (peer closed it, or the protocol layer did) with `code`."""
        if self.peer_code is None:
            self.peer_code = code
        if not self.closing:
            self.closing = True
            self._interrupt()

    @property
    def final_code(self) -> int:
        """The close code the session ended with: ours if we closed it, else the peer's."""
        if self.close_code is not None:
            return self.close_code
        return self.peer_code if self.peer_code is not None else 1006

    def _interrupt(self) -> None:
        """Wake the session task out of its read loop; from inside it, the loop sees `closing`."""
        session = self.session
        if self.reading and session is not None and session is not asyncio.current_task():
            self.interrupted = True
            session.cancel()
