"""Broadcast delivery against a real server: exactly once, in order, and immune to a stalled
client. Publishing runs on the server's own loop, through the manager, as the feed does."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import defaultdict

import orjson
import pytest
from websockets.asyncio.client import ClientConnection

from tests.app.ws.conftest import StartServer
from tests.app.ws.live import (
    LiveServer,
    client,
    publish,
    stall,
    subscribe,
    until,
    wait_closed,
)

pytestmark = pytest.mark.server


async def collect(ws: ClientConnection, into: dict[str, list[int]], quiet: float = 0.5) -> None:
    """Record the `seq` of every update by topic until nothing arrives for `quiet` s."""
    with contextlib.suppress(TimeoutError):
        while True:
            update = orjson.loads(await asyncio.wait_for(ws.recv(), quiet))
            into[update["topic"]].append(update["data"]["seq"])


async def test_broadcast_reaches_every_subscriber_once_and_in_order(
    live_server: StartServer,
) -> None:
    server = live_server(ws_queue_size=4096)
    plan = [(topic, {"seq": i}) for i in range(300) for topic in ("alerts", "tickers.BTCUSDT")]
    async with contextlib.AsyncExitStack() as stack:
        both = [await stack.enter_async_context(client(server.url)) for _ in range(4)]
        alerts_only = await stack.enter_async_context(client(server.url))
        for ws in both:
            await subscribe(ws, "alerts", "tickers.BTCUSDT")
        await subscribe(alerts_only, "alerts")

        received: list[dict[str, list[int]]] = [defaultdict(list) for _ in range(5)]
        readers = [
            asyncio.create_task(collect(ws, seen))
            for ws, seen in zip([*both, alerts_only], received, strict=True)
        ]
        await server.run(publish(server.manager, plan, every=20, pause=0))
        await asyncio.gather(*readers)

    for seen in received[:4]:
        assert seen == {"alerts": list(range(300)), "tickers.BTCUSDT": list(range(300))}
    assert received[4] == {"alerts": list(range(300))}
    stats = server.manager.stats
    assert stats.messages_sent["alerts"] == 5 * 300
    assert stats.messages_sent["tickers"] == 4 * 300
    assert sum(stats.messages_dropped.values()) == 0


async def deliveries(
    server: LiveServer, fast: list[ClientConnection], phase: str, messages: int
) -> tuple[int, float]:
    """Publish `messages` alerts at a steady pace; total deliveries to `fast` and the time it
    took until the last of them arrived."""
    counts = [0] * len(fast)
    last = [0.0] * len(fast)

    async def read(i: int, ws: ClientConnection) -> None:
        with contextlib.suppress(TimeoutError):
            while counts[i] < messages:
                update = orjson.loads(await asyncio.wait_for(ws.recv(), 1.0))
                if update["data"].get("phase") == phase:
                    counts[i] += 1
                    last[i] = time.perf_counter()

    readers = [asyncio.create_task(read(i, ws)) for i, ws in enumerate(fast)]
    plan = [("alerts", {"phase": phase, "seq": i}) for i in range(messages)]
    started = time.perf_counter()
    await server.run(publish(server.manager, plan, every=10, pause=0.01))
    await asyncio.gather(*readers)
    return sum(counts), max(last) - started


async def test_a_stalled_client_does_not_slow_the_others(live_server: StartServer) -> None:
    server = live_server(ws_queue_size=64, ws_slow_consumer_timeout=300, ws_close_timeout=1)
    messages = 1500
    async with contextlib.AsyncExitStack() as stack:
        fast = [await stack.enter_async_context(client(server.url)) for _ in range(8)]
        for ws in fast:
            await subscribe(ws, "alerts")

        alone, alone_s = await deliveries(server, fast, "alone", messages)
        stalled_ws, stalled = await stall(server)
        dropped = sum(server.manager.stats.messages_dropped.values())
        shared, shared_s = await deliveries(server, fast, "stalled", messages)

        # The stalled client was really stuck the whole time, and only cost itself.
        assert sum(server.manager.stats.messages_dropped.values()) >= dropped + messages - 64
        assert await server.call(lambda: len(stalled.outbox)) <= 64
        assert not stalled.closing
        assert stalled_ws.transport is not None
        stalled_ws.transport.abort()

    assert alone >= 0.5 * len(fast) * messages  # liveness: the machine was not starved
    rate_alone, rate_shared = alone / alone_s, shared / shared_s
    assert rate_shared >= 0.8 * rate_alone, (rate_alone, rate_shared)


async def test_a_stalled_client_is_closed_with_1013(live_server: StartServer) -> None:
    server = live_server(
        ws_queue_size=16,
        ws_slow_consumer_timeout=0.3,
        ws_cleanup_interval=0.1,
        ws_close_timeout=20,
    )
    manager = server.manager
    async with client(server.url) as fast:
        await subscribe(fast, "alerts")
        stalled_ws, stalled = await stall(server)
        longest = 0

        async def closed() -> bool:
            nonlocal longest
            longest = max(longest, await server.call(lambda: len(stalled.outbox)))
            await server.call(lambda: manager.broadcast("alerts", {"seq": -1}))
            return manager.stats.slow_consumer_closes == 1

        await until(closed)
        assert longest <= 16  # bounded while it was stuck
        assert await server.call(lambda: len(stalled.outbox)) == 0  # freed at once
        assert stalled.topics == {}

        # The close frame waits behind what the client has not read; reading reaches it.
        code, reason = await wait_closed(stalled_ws, timeout=30)
        assert code == 1013
        assert reason.startswith("slow consumer")

        # The others never noticed.
        await server.call(lambda: manager.broadcast("alerts", {"seq": 1}))
        while orjson.loads(await asyncio.wait_for(fast.recv(), 10))["data"]["seq"] != 1:
            pass

        async def one_left() -> bool:
            return await server.call(lambda: len(manager.registry) == 1)

        await until(one_left)
    assert manager.stats.closed[1013] == 1
