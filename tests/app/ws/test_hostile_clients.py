"""Clients that do what they should not, against the app under a real uvicorn: what the server
keeps afterwards is measured in the kernel's socket table and in the log, not only in close codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
import time
from collections.abc import Awaitable, Callable, Iterator

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.protocol import State

from app.ws.stats import CLOSE_CODES, OTHER_CLOSE_CODE
from tests.app.ws.conftest import StartServer
from tests.app.ws.kernel import held_by_server
from tests.app.ws.live import (
    PADDING,
    LiveServer,
    client,
    recv_json,
    send_json,
    small_receive_buffer_socket,
    subscribe,
    until,
    wait_closed,
)
from tests.app.ws.rawclient import BINARY, CLOSE, PING, TEXT, close_code, frame, handshake

pytestmark = pytest.mark.server

PING_FRAME = orjson.dumps({"op": "ping"})
#: The slack the contract allows beyond WS_CLOSE_TIMEOUT for a socket to be gone.
RELEASE_SLACK = 1.0


class CapturedLog(logging.Handler):
    """Every record the server logs, formatted as a log file would show it (tracebacks too)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)

    def assert_quiet(self) -> None:
        """No traceback and nothing at ERROR or above."""
        assert "Traceback" not in self.text, self.text[:4000]
        errors = [self.format(r) for r in self.records if r.levelno >= logging.ERROR]
        assert not errors, errors[:5]


ListenToLog = Callable[[], CapturedLog]


@pytest.fixture
def server_log() -> Iterator[ListenToLog]:
    """Capture what the server logs from now on: call it once the server runs, because uvicorn
    configures its loggers when it starts (dropping their handlers), and they do not propagate
    to the root logger, so caplog would miss them."""
    attached: list[tuple[logging.Logger, CapturedLog]] = []

    def listen() -> CapturedLog:
        handler = CapturedLog()
        for logger in (logging.getLogger(), logging.getLogger("uvicorn")):
            logger.addHandler(handler)
            attached.append((logger, handler))
        return handler

    yield listen
    for logger, handler in attached:
        logger.removeHandler(handler)


async def stalled_client(server: LiveServer, topic: str) -> ClientConnection:
    """Subscribes, then never reads again (a tiny receive window and a one-frame client queue)."""
    sock = small_receive_buffer_socket(server.port)
    ws = await connect(server.url, sock=sock, compression=None, max_queue=1)
    await subscribe(ws, topic)
    return ws


async def flood_until_closed(server: LiveServer, topic: str, closes: int) -> None:
    """Broadcast large updates on the server's loop until `closes` slow consumers are closed."""
    manager = server.manager

    async def flood() -> None:
        seq = 0
        while manager.stats.slow_consumer_closes < closes:
            for _ in range(20):
                manager.broadcast(topic, {"seq": seq, "pad": PADDING})
                seq += 1
            await asyncio.sleep(0.01)

    await server.run(flood(), timeout=30)


async def admitted(server: LiveServer) -> bool:
    """Whether a new client is served (True) or turned away at the connection limit (False)."""
    async with client(server.url) as ws:
        try:
            await send_json(ws, {"op": "ping"})
            return await recv_json(ws) == {"op": "pong"}
        except ConnectionClosed:
            code, reason = ws.close_code, ws.close_reason or ""
            assert code == 1013, (code, reason)
            assert reason.startswith("connection limit reached"), reason
            return False


def counted(server: LiveServer, closes: int) -> Callable[[], Awaitable[bool]]:
    """Whether the server counted `closes` closes: a client may see its close before the
    server's session has ended."""

    async def check() -> bool:
        return await server.call(lambda: sum(server.manager.stats.closed.values()) >= closes)

    return check


def abort(ws: ClientConnection) -> None:
    if ws.transport is not None:
        ws.transport.abort()


async def test_slow_consumers_release_their_sockets_and_hold_their_slots_until_then(
    live_server: StartServer,
) -> None:
    close_timeout = 1.0
    server = live_server(
        ws_max_connections=4,
        ws_queue_size=8,
        ws_slow_consumer_timeout=0.3,
        ws_cleanup_interval=0.05,
        ws_close_timeout=close_timeout,
    )
    stalled = [await stalled_client(server, "tickers.ETHUSDT") for _ in range(4)]
    ports = {ws.local_address[1] for ws in stalled}
    try:
        await flood_until_closed(server, "tickers.ETHUSDT", 4)
        closed_at = time.monotonic()
        held = held_by_server(server.port, ports)
        assert len(held) == 4
        assert sum(s.send_queue for s in held) > 0  # unread data the kernel still holds

        # While the kernel holds them, they hold their places: newcomers are turned away.
        refused = 0
        while held_by_server(server.port, ports):
            assert time.monotonic() - closed_at <= close_timeout + RELEASE_SLACK, (
                f"slow consumers' sockets still held: {held_by_server(server.port, ports)}"
            )
            served = await admitted(server)
            still_held = held_by_server(server.port, ports)
            assert not (served and still_held), f"admitted beyond the limit beside {still_held}"
            refused += not served
        assert time.monotonic() - closed_at <= close_timeout + RELEASE_SLACK
        assert refused >= 1

        async def place_free() -> bool:
            return await admitted(server)

        await until(place_free)
    finally:
        for ws in stalled:
            abort(ws)
    stats = server.manager.stats
    assert stats.slow_consumer_closes == 4
    assert stats.closed[1013] == 4 + refused


async def test_a_client_that_never_answers_the_close_is_let_go_by_the_deadline(
    live_server: StartServer,
) -> None:
    close_timeout = 1.0
    server = live_server(
        ws_idle_timeout=0.3, ws_cleanup_interval=0.05, ws_close_timeout=close_timeout
    )
    reader, writer = await handshake(server.port)
    port = writer.get_extra_info("sockname")[1]
    try:
        assert await asyncio.wait_for(close_code(reader), 10) == 1000  # idle timeout
        closed_at = time.monotonic()  # the client reads on, and never answers

        async def released() -> bool:
            return not held_by_server(server.port, {port})

        await until(released, timeout=close_timeout + RELEASE_SLACK)
        assert time.monotonic() - closed_at <= close_timeout + RELEASE_SLACK
    finally:
        writer.transport.abort()
    assert server.manager.stats.closed[1000] == 1


async def test_a_turned_away_client_that_never_answers_is_let_go_by_the_deadline(
    live_server: StartServer,
) -> None:
    close_timeout = 1.0
    server = live_server(ws_max_connections=1, ws_close_timeout=close_timeout)
    async with client(server.url) as holder:
        await subscribe(holder, "alerts")
        reader, writer = await handshake(server.port)
        port = writer.get_extra_info("sockname")[1]
        try:
            assert await asyncio.wait_for(close_code(reader), 10) == 1013
            closed_at = time.monotonic()

            async def released() -> bool:
                return not held_by_server(server.port, {port})

            await until(released, timeout=close_timeout + RELEASE_SLACK)
            assert time.monotonic() - closed_at <= close_timeout + RELEASE_SLACK
        finally:
            writer.transport.abort()
    assert server.manager.stats.connections_rejected == 1


async def test_a_client_that_only_sends_requests_is_slowed_down_then_closed(
    live_server: StartServer,
) -> None:
    """Backpressure does not make a client that never reads immortal. Its requests are ones
    with long answers (an error listing 55 unknown topics), so the server's buffers fill fast."""
    server = live_server(
        ws_slow_consumer_timeout=0.3, ws_cleanup_interval=0.05, ws_close_timeout=1.0
    )
    sock = small_receive_buffer_socket(server.port)
    _, writer = await handshake(server.port, sock)
    port = writer.get_extra_info("sockname")[1]
    unknown = orjson.dumps({"op": "subscribe", "topics": [f"nope.{i:059d}" for i in range(55)]})
    requests = frame(TEXT, unknown) * 50

    async def keep_sending() -> None:
        with contextlib.suppress(ConnectionError):
            while True:
                writer.write(requests)
                await writer.drain()

    sender = asyncio.create_task(keep_sending())
    try:

        async def closed() -> bool:
            return server.manager.stats.slow_consumer_closes == 1

        await until(closed)

        async def released() -> bool:
            return not held_by_server(server.port, {port})

        await until(released, timeout=1.0 + RELEASE_SLACK + 0.5)
    finally:
        sender.cancel()
        writer.transport.abort()
    stats = server.manager.stats
    assert stats.closed[1013] == 1
    assert sum(stats.messages_dropped.values()) == 0  # stuck on replies alone, not on updates


async def test_a_client_that_reads_gets_every_pong(live_server: StartServer) -> None:
    server = live_server()
    async with client(server.url) as ws:
        assert ws.transport is not None
        ws.transport.write(frame(TEXT, PING_FRAME) * 200)  # 200 pings in one write
        for _ in range(200):
            assert await recv_json(ws) == {"op": "pong"}
        for _ in range(500):  # back to back, before reading any answer
            await send_json(ws, {"op": "ping"})
        for _ in range(500):
            assert await recv_json(ws) == {"op": "pong"}
        assert ws.state is State.OPEN
        (held,) = held_by_server(server.port, {ws.local_address[1]})
        assert held.state == "ESTABLISHED"
    stats = server.manager.stats
    await until(counted(server, 1))
    assert stats.slow_consumer_closes == 0
    assert stats.closed == {1000: 1}
    assert stats.messages_sent["none"] == 700


async def test_invalid_utf8_closes_with_1007_without_a_traceback(
    live_server: StartServer, server_log: ListenToLog
) -> None:
    server = live_server()
    log = server_log()
    codes: list[int | None] = []

    async def one() -> None:
        async with client(server.url) as ws:
            await ws.send(b'{"op": "ping", "x": "\xff\xfe"}', text=True)
            codes.append((await wait_closed(ws))[0])

    for _ in range(30):
        await asyncio.gather(*(one() for _ in range(10)))
    assert codes == [1007] * 300
    await until(counted(server, 300))
    log.assert_quiet()
    assert sum("UTF-8" in line for line in log.lines) <= 1
    assert server.manager.stats.closed[1007] == 300


def fuzz_input(rng: random.Random) -> bytes:
    """Something a hostile client might send right after the handshake."""
    payload = rng.randbytes(rng.choice([0, 1, 7, 125, 126, 300, 5000, 70_000]))
    kind = rng.randrange(10)
    if kind == 0:
        return rng.randbytes(rng.randrange(1, 200))  # not frames at all
    if kind == 1:  # any opcode, reserved bits, fragments, masked or not
        return frame(
            rng.randrange(16),
            payload,
            fin=rng.random() < 0.7,
            rsv=rng.randrange(8),
            masked=rng.random() < 0.9,
        )
    if kind == 2:
        return frame(BINARY, payload)
    if kind == 3:
        return frame(TEXT, payload)  # mostly invalid UTF-8, sometimes too large
    if kind == 4:
        return frame(TEXT, rng.choice([b"{", b"[]", b"null", b'{"op": 1}', b'"\\ud800"']))
    if kind == 5:  # a close with any code and an arbitrary reason
        return frame(CLOSE, struct.pack("!H", rng.randrange(65536)) + payload[:100])
    if kind == 6:
        return frame(PING, payload[:200])  # control frames over 125 bytes are a violation
    if kind == 7:  # a fragmented text message, split inside a character
        text = '{"op": "ping", "x": "é€😀"}'.encode()
        cut = rng.randrange(1, len(text))
        return frame(TEXT, text[:cut], fin=False) + frame(0x0, text[cut:])
    if kind == 8:
        topics = [rng.randbytes(8).hex() for _ in range(rng.randrange(1, 300))]
        return frame(TEXT, orjson.dumps({"op": "subscribe", "topics": topics}))
    return frame(TEXT, PING_FRAME) * rng.randrange(1, 400)


async def test_fuzzed_input_never_logs_a_traceback(
    live_server: StartServer, server_log: ListenToLog
) -> None:
    server = live_server(ws_close_timeout=1.0)
    log = server_log()
    rng = random.Random(20261202)
    inputs = [b"".join(fuzz_input(rng) for _ in range(rng.randrange(1, 4))) for _ in range(120)]

    async def one(data: bytes) -> None:
        reader, writer = await handshake(server.port)
        try:
            writer.write(data)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(close_code(reader), 0.5)
        finally:
            writer.transport.abort()

    for start in range(0, len(inputs), 20):
        await asyncio.gather(*(one(data) for data in inputs[start : start + 20]))
    async with client(server.url) as ws:  # still serving
        await send_json(ws, {"op": "ping"})
        assert await recv_json(ws) == {"op": "pong"}

    async def all_gone() -> bool:
        return await server.call(lambda: len(server.manager.registry) == 0)

    await until(all_gone)
    log.assert_quiet()
    assert set(server.manager.stats.closed) <= CLOSE_CODES | {OTHER_CLOSE_CODE}
    assert sum(server.manager.stats.closed.values()) == 121


async def test_close_codes_are_those_the_client_saw(live_server: StartServer) -> None:
    server = live_server(uvicorn={"ws_ping_interval": 0.2, "ws_ping_timeout": 0.3})
    stats = server.manager.stats

    # A client that stops answering protocol pings: uvicorn closes it with 1011.
    async with client(server.url, ping_interval=None) as silent:
        await subscribe(silent, "alerts")
        assert silent.transport is not None
        silent.transport.pause_reading()  # the pings are never read, so never answered

        async def counted() -> bool:
            return sum(stats.closed.values()) == 1

        await until(counted)
        silent.transport.resume_reading()
        assert await wait_closed(silent) == (1011, "keepalive ping timeout")
    assert stats.closed == {1011: 1}

    # A client that vanishes without a close frame: 1006.
    async with client(server.url) as vanishing:
        await subscribe(vanishing, "alerts")
        abort(vanishing)

    async def both() -> bool:
        return sum(stats.closed.values()) == 2

    await until(both)
    assert stats.closed == {1011: 1, 1006: 1}
