from __future__ import annotations

import asyncio

import pytest

from app.ws.outbox import CONTROL_LANE_SIZE, Outbox, Outgoing


def update(n: int, topic: str = "alerts") -> Outgoing:
    return Outgoing({"type": "websocket.send", "text": str(n)}, "alerts", topic)


def test_full_queue_drops_the_oldest_update() -> None:
    box = Outbox(3)
    items = [update(n) for n in range(5)]
    dropped = [box.put_nowait(item) for item in items]
    assert dropped == [None, None, None, items[0], items[1]]
    assert [box.pop() for _ in range(4)] == [items[2], items[3], items[4], None]


def test_replies_go_first_and_are_never_dropped() -> None:
    box = Outbox(1)
    box.put_nowait(update(1))
    reply = Outgoing({"type": "websocket.send", "text": "ack"})
    box.put_control(reply)
    box.put_nowait(update(2))
    assert box.pop() is reply
    assert box.pop() is not None
    assert box.pop() is None
    for _ in range(CONTROL_LANE_SIZE):
        assert not box.control_full
        box.put_control(reply)
    assert box.control_full
    assert len(box) == CONTROL_LANE_SIZE


async def test_room_returns_once_the_writer_took_a_reply() -> None:
    box = Outbox(1)
    await asyncio.wait_for(box.room(), 1)  # room already: returns at once
    for _ in range(CONTROL_LANE_SIZE):
        box.put_control(Outgoing({"type": "websocket.send", "text": "pong"}))
    waiter = asyncio.create_task(box.room())
    await asyncio.sleep(0)
    box.put_nowait(update(1))  # updates do not count
    await asyncio.sleep(0)
    assert not waiter.done()
    assert box.pop() is not None
    await asyncio.wait_for(waiter, 1)
    for _ in range(2):
        box.put_control(Outgoing({"type": "websocket.send", "text": "pong"}))
    waiter = asyncio.create_task(box.room())
    await asyncio.sleep(0)
    box.clear()  # the session is ending: nobody waits for room any longer
    await asyncio.wait_for(waiter, 1)


def test_progress_resets_the_full_streak() -> None:
    box = Outbox(1)
    box.full_since = 12.0
    box.put_nowait(update(1))
    assert box.full_since == 12.0
    box.pop()
    assert box.full_since is None


def test_discard_topic_and_clear() -> None:
    box = Outbox(10)
    for n in range(4):
        box.put_nowait(update(n, "a" if n % 2 else "b"))
    assert box.discard_topic("a") == 2
    assert [i.topic for i in box.clear()] == ["b", "b"]
    assert len(box) == 0
    with pytest.raises(ValueError, match="maxsize"):
        Outbox(0)


async def test_wait_returns_when_something_is_queued() -> None:
    box = Outbox(2)
    waiter = asyncio.create_task(box.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    box.put_nowait(update(1))
    await asyncio.wait_for(waiter, 1)
    await asyncio.wait_for(box.wait(), 1)  # already non-empty: returns at once
