"""One client's bounded outgoing queue: updates drop oldest-first, replies are never dropped.

Broadcasting must never wait for a client, so `put_nowait` always succeeds at once: when the
queue is full, the oldest update goes. Market updates are snapshots, so the newest one is the one
worth keeping. Replies to the client's own requests (ack, pong, error) go in a separate small
lane that is sent first and never dropped. The client itself fills that lane, so it is bounded by
backpressure instead: while it is full the session stops reading client frames (`room`) until
the writer has sent some, and TCP slows the client down. Each frame gets at most one reply, so
the lane never holds more than CONTROL_LANE_SIZE.
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from typing import Final

from app.ws.protocol import Message
from app.ws.stats import NO_FAMILY

#: Replies waiting to be sent before the session stops reading client frames.
CONTROL_LANE_SIZE: Final = 32


@dataclass(frozen=True, slots=True, eq=False)
class Outgoing:
    """A frame to send; one instance is shared by every client a broadcast reaches."""

    message: Message
    family: str = NO_FAMILY
    topic: str = ""


class Outbox:
    __slots__ = ("_control", "_room", "_updates", "_waiter", "full_since", "maxsize")

    def __init__(self, maxsize: int) -> None:
        if maxsize < 1:
            raise ValueError("maxsize must be >= 1")
        self.maxsize = maxsize
        self._updates: deque[Outgoing] = deque()
        # A list: at most CONTROL_LANE_SIZE short-lived entries, and a tenth of a deque's size.
        self._control: list[Outgoing] = []
        self._waiter: asyncio.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None
        #: Clock reading of the first drop (or of the reader waiting for `room`) since the writer
        #: last took something; None while the client keeps up. How long it stays set is how
        #: long the client has been stuck.
        self.full_since: float | None = None

    def __len__(self) -> int:
        return len(self._updates) + len(self._control)

    def put_nowait(self, item: Outgoing) -> Outgoing | None:
        """Queue an update; returns the update dropped to make room, if any."""
        dropped = self._updates.popleft() if len(self._updates) >= self.maxsize else None
        self._updates.append(item)
        self._wake()
        return dropped

    def put_control(self, item: Outgoing) -> None:
        """Queue a reply ahead of updates. The caller keeps the lane bounded: it reads the next
        client frame only once `control_full` is false."""
        self._control.append(item)
        self._wake()

    @property
    def control_full(self) -> bool:
        return len(self._control) >= CONTROL_LANE_SIZE

    async def room(self) -> None:
        """Return once the reply lane has room (at once if it has)."""
        if not self.control_full:
            return
        room = asyncio.get_running_loop().create_future()
        self._room = room
        try:
            await room
        finally:
            self._room = None

    def discard_topic(self, topic: str) -> int:
        """Remove queued updates of `topic` (after an unsubscribe); returns how many."""
        before = len(self._updates)
        if before:
            self._updates = deque(u for u in self._updates if u.topic != topic)
        return before - len(self._updates)

    def clear(self) -> list[Outgoing]:
        """Empty the queue; returns the updates that will now never be sent."""
        pending = list(self._updates)
        self._updates.clear()
        self._control.clear()
        self._make_room()
        return pending

    def pop(self) -> Outgoing | None:
        """The next frame to send (replies first), or None if there is none."""
        if self._control:
            item = self._control.pop(0)
            self._make_room()
        elif self._updates:
            item = self._updates.popleft()
        else:
            return None
        self.full_since = None
        return item

    async def wait(self) -> None:
        """Return once something is queued (at once if something already is)."""
        if self._updates or self._control:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiter = waiter
        try:
            await waiter
        finally:
            self._waiter = None

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _make_room(self) -> None:
        room = self._room
        if room is not None and not room.done() and not self.control_full:
            room.set_result(None)
