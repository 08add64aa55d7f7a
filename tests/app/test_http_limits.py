"""Hostile HTTP clients against the real `market-api` process.

Each attack is measured from outside, as an operator would: the server's resident memory
(psutil on its pid) and the TCP connections it holds on its port, besides the answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator

import httpx
import orjson
import pytest
from websockets.asyncio.client import connect

from tests.support.market_process import MarketProcess, market_process

pytestmark = pytest.mark.server

HEAD_LIMIT = 16 * 1024
HEAD_TIMEOUT = 2.0
HEALTH = "/api/monitoring/performance/health"
MIB = 1024 * 1024


async def _status_then_eof(port: int, head: bytes, *, within: float = 10.0) -> tuple[bytes, bool]:
    """Send `head`, read the whole answer; True if the server then closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        with contextlib.suppress(ConnectionError):
            writer.write(head)
            await writer.drain()
        answer = b""
        closed = False
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), deadline - time.monotonic())
            except (ConnectionError, TimeoutError):
                break
            if not chunk:
                closed = True
                break
            answer += chunk
        return answer, closed
    finally:
        writer.close()


async def _wait_for(predicate: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.1)
    return False


@pytest.fixture
def server() -> Iterator[MarketProcess]:
    env = {
        "HTTP_MAX_HEADER_BYTES": str(HEAD_LIMIT),
        "HTTP_HEADER_TIMEOUT": str(HEAD_TIMEOUT),
        "HTTP_MAX_CONCURRENCY": "1100",
    }
    with market_process(env) as proc:
        yield proc


async def test_a_head_over_the_limit_gets_431_and_the_connection_is_closed(
    server: MarketProcess,
) -> None:
    big_header = (
        b"GET " + HEALTH.encode() + b" HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * (HEAD_LIMIT + 1)
    )
    many_headers = b"GET " + HEALTH.encode() + b" HTTP/1.1\r\nHost: t\r\n"
    many_headers += b"".join(b"X-%d: 1\r\n" % i for i in range(100_000))
    for head in (big_header + b"\r\n\r\n", many_headers + b"\r\n"):
        answer, closed = await _status_then_eof(server.port, head)
        assert answer.startswith(b"HTTP/1.1 431 "), answer[:200]
        assert b'"error":"request_header_fields_too_large"' in answer
        assert closed

    # A head just under the limit is served as before.
    fits = b"GET " + HEALTH.encode() + b" HTTP/1.1\r\nHost: t\r\nConnection: close\r\n"
    fits += b"X-Fits: " + b"a" * (HEAD_LIMIT - len(fits) - 200) + b"\r\n\r\n"
    answer, closed = await _status_then_eof(server.port, fits)
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]


async def test_heads_not_complete_in_time_are_closed(server: MarketProcess) -> None:
    idle = server.established()
    silent = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(20)]
    partial = []
    for _ in range(20):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET " + HEALTH.encode() + b" HTTP/1.1\r\nHost: t\r\n")
        partial.append((reader, writer))
    assert await _wait_for(lambda: server.established() >= idle + 40, 5)
    started = time.monotonic()
    assert await _wait_for(lambda: server.established() <= idle, HEAD_TIMEOUT + 5)
    assert time.monotonic() - started >= HEAD_TIMEOUT - 1.0
    for reader, writer in [*silent, *partial]:
        assert await asyncio.wait_for(reader.read(), 2) == b""
        writer.close()


async def test_concurrency_beyond_the_limit_gets_503_not_growth() -> None:
    env = {
        "HTTP_HEADER_TIMEOUT": str(HEAD_TIMEOUT),
        "HTTP_MAX_CONCURRENCY": "20",
        "WS_MAX_CONNECTIONS": "10",
    }
    with market_process(env) as proc:
        held = [await asyncio.open_connection("127.0.0.1", proc.port) for _ in range(20)]
        assert await _wait_for(lambda: proc.established() >= 20, 10)
        answer, _ = await _status_then_eof(
            proc.port, f"GET {HEALTH} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".encode()
        )
        assert answer.startswith(b"HTTP/1.1 503 "), answer[:200]
        # Once the silent connections time out, requests are served again.
        assert await _wait_for(lambda: proc.established() == 0, HEAD_TIMEOUT + 10)
        async with httpx.AsyncClient(base_url=proc.url) as client:
            assert (await client.get(HEALTH)).status_code == 200
        for _, writer in held:
            writer.close()


async def _endless_head(port: int, stop: asyncio.Event, budget: int) -> int:
    """Send one never-ending header, reconnecting whenever the server hangs up; bytes sent."""
    sent = 0
    chunk = b"a" * 65536
    while not stop.is_set() and sent < budget:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except ConnectionError:
            await asyncio.sleep(0.01)
            continue
        try:
            writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nX-Endless: ")
            while not stop.is_set() and sent < budget:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)
        except ConnectionError:
            await asyncio.sleep(0.01)
        finally:
            writer.close()
    return sent


async def _slowloris(port: int, stop: asyncio.Event) -> bool:
    """One byte of a header every half second; True if the server closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: ")
        while not stop.is_set():
            try:
                writer.write(b"a")
                await writer.drain()
                if await asyncio.wait_for(reader.read(1), 0.5) == b"":
                    return True
            except TimeoutError:
                continue
            except ConnectionError:
                return True
        return False
    finally:
        writer.close()


async def test_attackers_cost_no_memory_and_a_normal_client_is_served(
    server: MarketProcess,
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=5.0) as client:
        for _ in range(50):  # warm up: the first requests allocate what every request reuses
            assert (await client.get(HEALTH)).status_code == 200
        await asyncio.sleep(0.5)
        idle_rss = server.rss()
        idle_sockets = server.established()

        stop = asyncio.Event()
        attackers = [
            asyncio.create_task(_endless_head(server.port, stop, budget=8 * MIB)) for _ in range(10)
        ]
        slow = [asyncio.create_task(_slowloris(server.port, stop)) for _ in range(200)]
        silent = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(20)]

        peak_rss = idle_rss
        peak_sockets = 0
        served = 0
        attack_ends = time.monotonic() + 3 * HEAD_TIMEOUT
        while time.monotonic() < attack_ends:
            response = await client.get(HEALTH)  # a failure here fails the test
            assert response.status_code == 200
            served += 1
            peak_rss = max(peak_rss, server.rss())
            peak_sockets = max(peak_sockets, server.established())
            await asyncio.sleep(0.1)
        still_open = server.established() - idle_sockets
        stop.set()
        sent = await asyncio.gather(*attackers)
        closed_by_server = await asyncio.gather(*slow)
        for _, writer in silent:
            writer.close()

    growth = peak_rss - idle_rss
    print(
        f"idle RSS {idle_rss / MIB:.1f} MiB, peak {peak_rss / MIB:.1f} MiB (+{growth / MIB:.1f}); "
        f"attackers sent {sum(sent) / MIB:.0f} MiB; peak sockets {peak_sockets}, "
        f"open at the end {still_open}; slowloris closed by the server "
        f"{sum(closed_by_server)}/200; normal requests served {served}"
    )
    assert served >= 10
    assert sum(sent) >= 10 * 1024 * 1024  # the attack really happened
    assert growth < 20 * MIB
    assert all(closed_by_server)
    assert still_open <= 12  # at most the attackers' current connections


async def test_a_websocket_outlives_the_head_timeout(server: MarketProcess) -> None:
    url = f"ws://127.0.0.1:{server.port}/ws/dashboard"
    async with connect(url) as socket:
        await asyncio.sleep(HEAD_TIMEOUT + 1.0)
        await socket.send(orjson.dumps({"op": "ping"}).decode())
        for _ in range(20):  # a hello or updates may come first
            frame = orjson.loads(await asyncio.wait_for(socket.recv(), 5))
            if frame.get("op") == "pong":
                break
        else:
            pytest.fail("no pong")
