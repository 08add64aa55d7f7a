"""The dashboard protocol against the app under a real uvicorn, with real WebSocket clients."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from websockets.asyncio.client import ClientConnection

from tests.app.ws.conftest import StartServer
from tests.app.ws.live import (
    LiveServer,
    client,
    recv_json,
    recv_op,
    send_json,
    stall,
    subscribe,
    until,
    wait_closed,
)

pytestmark = pytest.mark.server


async def no_frame_within(ws: ClientConnection, seconds: float) -> bool:
    try:
        await asyncio.wait_for(ws.recv(), seconds)
    except TimeoutError:
        return True
    return False


async def assert_clean(server: LiveServer) -> None:
    """Every session is gone: no registry entry, subscription, queued frame or task."""

    async def gone() -> bool:
        return await server.call(lambda: len(server.manager.registry) == 0)

    await until(gone)
    manager = server.manager
    assert await server.call(lambda: manager.tasks) == 0
    assert await server.call(manager.registry.active_topics) == ()
    assert manager.stats.active_connections == 0


async def test_subscribe_receive_unsubscribe(live_server: StartServer) -> None:
    server = live_server(ws_feed_interval=0.05, market_ttl=1)
    async with client(server.url) as ws:
        ack = await subscribe(ws, "tickers.btcusdt", "Market.Movers", "market.overview")
        assert ack["topics"] == ["tickers.BTCUSDT", "market.movers", "market.overview"]
        assert ack["subscriptions"] == 3
        seen: dict[str, dict[str, object]] = {}
        while len(seen) < 3:
            update = await recv_json(ws)
            seen[update["topic"]] = update["data"]
        assert seen["tickers.BTCUSDT"]["symbol"] == "BTCUSDT"
        assert "gainers" in seen["market.movers"]
        assert seen["market.overview"]["symbols"] == 60

        await send_json(ws, {"op": "unsubscribe", "topics": ["TICKERS.BTCUSDT", "market.movers"]})
        ack = await recv_op(ws, "ack")
        assert (ack["request"], ack["subscriptions"]) == ("unsubscribe", 1)
        assert ack["topics"] == ["tickers.BTCUSDT", "market.movers"]
        await send_json(ws, {"op": "unsubscribe", "topics": ["market.overview"]})
        assert (await recv_op(ws, "ack"))["subscriptions"] == 0
        # Queued updates of those topics were discarded with the subscription: nothing follows.
        assert await no_frame_within(ws, 0.5)
    await assert_clean(server)


async def test_one_upstream_read_serves_every_subscriber(live_server: StartServer) -> None:
    server = live_server(ws_feed_interval=0.02, market_ttl=1)
    clients = [client(server.url) for _ in range(5)]
    sockets = [await c.__aenter__() for c in clients]
    try:
        for ws in sockets:
            await subscribe(ws, "tickers.BTCUSDT", "tickers.ETHUSDT", "market.overview")
        calls = server.services.upstream.calls
        ticks = server.manager.stats.feed_ticks
        started = time.monotonic()
        await asyncio.sleep(1.0)
        ticks = server.manager.stats.feed_ticks - ticks
        ttl_periods = (time.monotonic() - started) / 1.0
        calls = server.services.upstream.calls - calls
        assert ticks >= 10
        # Five clients, three topics, dozens of ticks: one ticker snapshot per cache TTL.
        assert calls <= ttl_periods + 2
    finally:
        for c in clients:
            await c.__aexit__(None, None, None)


async def test_unknown_topics_get_an_error_and_the_socket_stays_open(
    live_server: StartServer,
) -> None:
    server = live_server()
    async with client(server.url) as ws:
        await subscribe(ws, "alerts")  # the ticker snapshot is now cached
        calls = server.services.upstream.calls
        for topics in (["tickers.DOGEEUR"], ["weather.today"], ["tickers.B-1", "alerts"]):
            await send_json(ws, {"op": "subscribe", "topics": topics})
            error = await recv_op(ws, "error")
            assert error["reason"] == "unknown topic"
            assert error["request"] == "subscribe"
            assert error["topics"] == [t for t in topics if t != "alerts"]
        await send_json(ws, {"op": "subscribe", "topics": ["tickers.NOPEUSDT"]})
        await recv_op(ws, "error")
        assert server.services.upstream.calls <= calls + 1  # checked against the snapshot
        await send_json(ws, {"op": "ping"})
        assert await recv_json(ws) == {"op": "pong"}
        assert await server.call(server.manager.registry.active_topics) == ("alerts",)


async def test_subscription_limit(live_server: StartServer) -> None:
    server = live_server(ws_max_subscriptions=2)
    async with client(server.url) as ws:
        await send_json(
            ws, {"op": "subscribe", "topics": ["alerts", "market.movers", "tickers.BTCUSDT"]}
        )
        assert (await recv_op(ws, "error"))["kind"] == "bad_topics"  # more than fit in one frame
        assert (await subscribe(ws, "alerts", "market.movers"))["subscriptions"] == 2
        await send_json(ws, {"op": "subscribe", "topics": ["tickers.BTCUSDT"]})
        error = await recv_op(ws, "error")
        assert error["reason"].startswith("subscription limit reached")
        assert (await subscribe(ws, "ALERTS"))["subscriptions"] == 2  # already subscribed


@pytest.mark.parametrize(
    ("frame", "kind", "code"),
    [
        ("{not json", "malformed_json", 1008),
        ("[]", "not_an_object", 1008),
        ('{"op": "publish"}', "unknown_op", 1008),
        ('{"op": "subscribe", "topics": "alerts"}', "bad_topics", 1008),
        (b"\x00\x01binary", "binary", 1003),
    ],
)
async def test_bad_frames_get_errors_then_a_close(
    live_server: StartServer,
    caplog: pytest.LogCaptureFixture,
    frame: str | bytes,
    kind: str,
    code: int,
) -> None:
    caplog.set_level(logging.ERROR)
    server = live_server(ws_max_invalid_messages=3)
    async with client(server.url) as ws:
        for _ in range(2):
            await ws.send(frame)
            error = await recv_op(ws, "error")
            assert error["kind"] == kind
            assert error["reason"]
        await send_json(ws, {"op": "ping"})
        assert await recv_json(ws) == {"op": "pong"}  # still served between bad frames
        await ws.send(frame)
        close_code, reason = await wait_closed(ws)
    assert close_code == code
    assert reason.startswith("too many invalid frames")
    assert server.manager.stats.invalid_messages[kind] == 3
    assert server.manager.stats.closed[code] == 1
    await assert_clean(server)
    assert not [r for r in caplog.records if "Exception in ASGI application" in r.getMessage()]


@pytest.mark.parametrize("protocol_limit", [True, False], ids=["uvicorn-limit", "app-limit"])
@pytest.mark.parametrize("frame", ["x" * 2000, b"x" * 2000], ids=["text", "binary"])
async def test_oversized_frames_close_with_1009(
    live_server: StartServer, protocol_limit: bool, frame: str | bytes
) -> None:
    # The app checks its own limit too, for servers that do not enforce one.
    server = live_server(ws_max_message_bytes=1024, ws_max_size=None if protocol_limit else 1 << 20)
    async with client(server.url) as ws:
        await ws.send(frame)
        close_code, reason = await wait_closed(ws)
    assert close_code == 1009
    assert reason
    await assert_clean(server)
    assert server.manager.stats.closed[1009] == 1


async def test_idle_sockets_are_swept_and_pings_keep_one_open(live_server: StartServer) -> None:
    server = live_server(ws_idle_timeout=0.6, ws_cleanup_interval=0.1)
    async with client(server.url) as active, client(server.url) as idle:
        await subscribe(idle, "alerts")
        pinging = True

        async def keep_pinging() -> None:
            while pinging:
                await send_json(active, {"op": "ping"})
                assert await recv_json(active) == {"op": "pong"}
                await asyncio.sleep(0.1)

        pinger = asyncio.create_task(keep_pinging())
        assert await wait_closed(idle) == (1000, "idle timeout")
        assert not pinger.done()  # the pinging socket outlived the idle one
        pinging = False
        await pinger
        assert await wait_closed(active) == (1000, "idle timeout")
    await assert_clean(server)
    assert server.manager.stats.closed[1000] == 2


async def test_connection_limit(live_server: StartServer) -> None:
    server = live_server(ws_max_connections=3)
    clients = [client(server.url) for _ in range(3)]
    sockets = [await c.__aenter__() for c in clients]
    try:
        for ws in sockets:
            await subscribe(ws, "alerts")
        async with client(server.url) as extra:
            code, reason = await wait_closed(extra)
        assert code == 1013
        assert reason.startswith("connection limit reached (3)")
        assert server.manager.stats.connections_rejected == 1
        await clients[0].__aexit__(None, None, None)

        async def slot_free() -> bool:
            return await server.call(lambda: len(server.manager.registry) < 3)

        await until(slot_free)
        async with client(server.url) as again:
            assert (await subscribe(again, "alerts"))["subscriptions"] == 1
    finally:
        for c in clients[1:]:
            await c.__aexit__(None, None, None)
    await assert_clean(server)
    stats = server.manager.stats
    assert (stats.connections_accepted, stats.connections_rejected) == (4, 1)


async def test_shutdown_closes_every_socket_with_1001(live_server: StartServer) -> None:
    server = live_server(ws_shutdown_timeout=2.0)
    clients = [client(server.url) for _ in range(5)]
    sockets = [await c.__aenter__() for c in clients]
    try:
        for ws in sockets:
            await subscribe(ws, "alerts", "tickers.BTCUSDT")
        await server.run(server.manager.shutdown())
        for ws in sockets:
            assert await wait_closed(ws) == (1001, "server shutting down")
        # Still listening, no longer accepting: a newcomer is told why.
        async with client(server.url) as late:
            assert await wait_closed(late) == (1001, "server shutting down")
    finally:
        for c in clients:
            await c.__aexit__(None, None, None)
    await assert_clean(server)
    assert server.manager.stats.closed[1001] == 6
    assert server.manager.stats.connections_rejected == 1


async def test_shutdown_does_not_wait_for_a_client_that_does_not_read(
    live_server: StartServer,
) -> None:
    # Its close frame can never get out; shutdown gives up on it after WS_SHUTDOWN_TIMEOUT,
    # although WS_CLOSE_TIMEOUT alone would allow it ten times longer.
    server = live_server(ws_shutdown_timeout=0.5, ws_close_timeout=30, ws_slow_consumer_timeout=300)
    async with client(server.url) as reader:
        await subscribe(reader, "alerts")
        stalled_ws, _ = await stall(server)
        started = time.monotonic()
        await server.run(server.manager.shutdown())
        assert time.monotonic() - started < 15  # liveness: far below the 30 s close timeout
        assert await wait_closed(reader) == (1001, "server shutting down")
        await assert_clean(server)
        assert stalled_ws.transport is not None
        stalled_ws.transport.abort()
    assert server.manager.stats.closed[1001] == 2


async def test_stopping_the_server_closes_sockets_with_1001(live_server: StartServer) -> None:
    server = live_server(ws_shutdown_timeout=2.0)
    clients = [client(server.url) for _ in range(3)]
    sockets = [await c.__aenter__() for c in clients]
    try:
        for ws in sockets:
            await subscribe(ws, "alerts")
        stopping = asyncio.get_running_loop().run_in_executor(None, server.stop)
        for ws in sockets:
            assert await wait_closed(ws) == (1001, "server shutting down")
        await asyncio.wait_for(stopping, 30)
    finally:
        for c in clients:
            await c.__aexit__(None, None, None)
    assert not server.manager.accepting
    assert server.manager.stats.closed[1001] == 3
    assert server.manager.stats.active_connections == 0
