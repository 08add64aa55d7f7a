"""Clients that never read, against `market-api` in its own process: what the server still holds
after it closes them as slow consumers, and whether the connection limit holds meanwhile.

    .venv/bin/python -m bench.ws_hostile                    # this checkout, about 20 s
    .venv/bin/python -m bench.ws_hostile --source ../main   # another checkout, for comparison

`--clients` clients (also `WS_MAX_CONNECTIONS`) subscribe to `alerts` over sockets with a 4 KiB
receive window, then never read again; large notifications posted to the alert webhook fill the
server's buffers for them until all are closed with 1013. From then on, every 0.5 s for
`--watch` s: the server-side sockets the kernel still holds for them and the bytes in their send
queues (/proc/net/tcp, what `ss -tn` shows), the server's RSS, and whether one more client is
admitted although the stalled ones still hold sockets.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from devstack.process import ManagedProcess, free_port
from tests.app.ws.kernel import held_by_server
from tests.app.ws.live import small_receive_buffer_socket
from tests.app.ws.rawclient import TEXT, frame, handshake

NOTIFICATION: dict[str, Any] = {
    "version": "4",
    "groupKey": "bench",
    "status": "firing",
    "receiver": "bench",
    "alerts": [
        {
            "status": "firing",
            "labels": {"alertname": f"Bench{i}"},
            "annotations": {f"note{j}": "x" * 8000 for j in range(8)},
            "startsAt": "2026-01-01T00:00:00Z",
        }
        for i in range(1)
    ],
}


async def websocket_summary(http: httpx.AsyncClient) -> dict[str, Any]:
    response = await http.get("/api/monitoring/performance/summary")
    response.raise_for_status()
    body: dict[str, Any] = response.json()["websocket"]
    return body


async def admitted(url: str) -> bool:
    async with connect(url, compression=None, open_timeout=10) as ws:
        try:
            await ws.send(orjson.dumps({"op": "ping"}).decode())
            await asyncio.wait_for(ws.recv(), 5)
        except ConnectionClosed:
            return False
        return True


async def measure(port: int, pid: int, clients: int, watch: float) -> None:
    url = f"ws://127.0.0.1:{port}/ws/dashboard"
    process = psutil.Process(pid)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
        rss_idle = process.memory_info().rss
        writers = []
        ports = set()
        for _ in range(clients):
            _, writer = await handshake(port, small_receive_buffer_socket(port))
            writer.write(frame(TEXT, orjson.dumps({"op": "subscribe", "topics": ["alerts"]})))
            writers.append(writer)
            ports.add(writer.get_extra_info("sockname")[1])
        body = orjson.dumps(NOTIFICATION)
        started = time.monotonic()
        posted = 0
        while (await websocket_summary(http))["slow_consumer_closes"] < clients:
            response = await http.post(
                "/api/alerts/webhook", content=body, headers={"content-type": "application/json"}
            )
            response.raise_for_status()
            posted += 1
            if time.monotonic() - started > 120:
                raise RuntimeError("the stalled clients were not closed within 120 s")
        closed_at = time.monotonic()
        print(
            f"{clients} stalled clients closed with 1013 after {posted} notifications of "
            f"{len(body) / 1024:.0f} KiB; server RSS {rss_idle / 2**20:.1f} MiB before"
        )
        print("t (s)  held  states           send-queue MiB  RSS MiB  one more client")
        released_at: float | None = None
        while (now := time.monotonic()) - closed_at <= watch:
            held = held_by_server(port, ports)
            states = ",".join(sorted({s.state for s in held})) or "-"
            queued = sum(s.send_queue for s in held) / 2**20
            rss = process.memory_info().rss / 2**20
            extra = "admitted" if await admitted(url) else "refused (1013)"
            print(
                f"{now - closed_at:5.1f}  {len(held):4d}  {states:15s}  {queued:14.1f}  "
                f"{rss:7.1f}  {extra}"
            )
            if not held and released_at is None:
                released_at = now
            await asyncio.sleep(0.5)
        summary = await websocket_summary(http)
        when = "never" if released_at is None else f"{released_at - closed_at:.1f} s"
        print(f"released: {when}; active_connections {summary['active_connections']}")
        for writer in writers:
            writer.transport.abort()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--close-timeout", type=float, default=2.0)
    parser.add_argument("--watch", type=float, default=8.0)
    parser.add_argument("--source", type=Path, default=Path.cwd(), help="checkout to run")
    args = parser.parse_args()
    port = free_port()
    env = {
        "PYTHONPATH": str(args.source.resolve()),
        "APP_PORT": str(port),
        "LOG_LEVEL": "warning",
        "WS_MAX_CONNECTIONS": str(args.clients),
        "WS_SLOW_CONSUMER_TIMEOUT": "1",
        "WS_CLEANUP_INTERVAL": "0.2",
        "WS_CLOSE_TIMEOUT": str(args.close_timeout),
    }
    print(f"source: {args.source.resolve()}; WS_CLOSE_TIMEOUT={args.close_timeout}")
    with tempfile.TemporaryDirectory() as tmp:
        # -P: the app comes from --source (PYTHONPATH), not from the current directory.
        argv = [sys.executable, "-P", "-c", "from app.cli import main; main()"]
        server = ManagedProcess("market-api", argv, "127.0.0.1", port, Path(tmp) / "log", env)
        with server:
            assert server.proc is not None
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(measure(port, server.proc.pid, args.clients, args.watch))


if __name__ == "__main__":
    main()
