"""Thousands of sessions leave nothing behind: no registry entry, task, or memory."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from websockets.asyncio.client import connect

from devstack.process import ManagedProcess, free_port
from tests.app.ws.conftest import StartServer
from tests.app.ws.live import client, send_json, subscribe, until

pytestmark = pytest.mark.server


async def cycle(url: str, i: int) -> None:
    """One session: subscribe, then leave politely, after a bad frame, or by vanishing."""
    async with client(url) as ws:
        await subscribe(ws, "alerts", "tickers.BTCUSDT")
        if i % 3 == 1:
            await send_json(ws, {"op": "bogus"})
        elif i % 3 == 2:
            assert ws.transport is not None
            ws.transport.abort()


async def cycles(url: str, count: int, concurrency: int = 16) -> None:
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            await cycle(url, i)

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def test_sessions_leave_no_tasks_behind(live_server: StartServer) -> None:
    server = live_server()
    await cycles(server.url, 20)
    manager = server.manager

    async def settled() -> bool:
        return await server.call(lambda: len(manager.registry) == 0 and manager.tasks == 0)

    await until(settled)
    await asyncio.sleep(0.2)
    baseline = await server.loop_tasks()
    await cycles(server.url, 300)
    await until(settled)

    async def back_to_baseline() -> bool:
        return await server.loop_tasks() <= baseline

    await until(back_to_baseline)
    assert await server.call(manager.registry.active_topics) == ()
    assert manager.stats.connections_accepted == 320
    assert manager.stats.active_connections == 0


async def summary(base: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base) as http:
        response = await http.get("/api/monitoring/performance/summary")
    response.raise_for_status()
    body: dict[str, Any] = response.json()["websocket"]
    return body


async def test_ten_thousand_sessions_leave_no_trace_and_no_memory() -> None:
    """The service as it runs in production (its CLI, in its own process); RSS is its alone."""
    port = free_port()
    env = {"APP_PORT": str(port), "LOG_LEVEL": "warning", "WS_MAX_CONNECTIONS": "100"}
    with tempfile.TemporaryDirectory() as tmp:
        server = ManagedProcess(
            "market-api",
            [sys.executable, "-c", "from app.cli import main; main()"],
            "127.0.0.1",
            port,
            log_path=Path(tmp) / "server.log",
            env=env,
        )
        with server:
            assert server.proc is not None
            process = psutil.Process(server.proc.pid)
            url = f"ws://127.0.0.1:{port}/ws/dashboard"
            base = f"http://127.0.0.1:{port}"

            async def idle() -> bool:
                ws = await summary(base)
                return bool(ws["active_connections"] == 0 and ws["tasks"] == 0)

            # Warm-up: caches, bounded telemetry buffers and the allocator's arenas reach their
            # steady state (measured: RSS levels off after 15,000 to 20,000 sessions).
            await cycles(url, 20_000)
            await until(idle)
            before = process.memory_info().rss
            await cycles(url, 10_000)
            await until(idle)
            after = process.memory_info().rss
            ws = await summary(base)
            async with connect(url) as offered:  # offers permessage-deflate by default
                extensions = offered.protocol.extensions
            assert server.running, server.tail()

    assert ws["connections_accepted"] == 30_000
    assert ws["subscriptions"] == {"tickers": 0, "market": 0, "alerts": 0}
    assert (ws["topics"], ws["queued"], ws["tasks"]) == (0, 0, 0)
    assert ws["invalid_messages"] == {"unknown_op": 30_000 // 3}
    assert extensions == []  # not negotiated: see app/cli.py
    assert after - before < 1 << 20, f"RSS grew by {(after - before) / 1024:.0f} KiB"
