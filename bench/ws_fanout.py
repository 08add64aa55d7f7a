"""WebSocket fan-out: the connection manager against the naive pattern, in one run.

    .venv/bin/python -m bench.ws_fanout                                    # 1,000 subscribers
    .venv/bin/python -m bench.ws_fanout --subscribers 50 --seconds 2       # smoke run

For each implementation, a server process is started on a free port with N subscribers
connected to it from this process (raw sockets and a minimal frame parser, so the client side
is not the bottleneck), then:

1. idle: the server's RSS with N open, subscribed, idle sockets;
2. baseline: the server publishes `--rate` messages/s for `--seconds` s to every subscriber;
3. stalled: the same, with one more subscriber that never reads (tiny receive window), whose
   socket buffers are filled beforehand (the server can no longer write to it at all).

Reported: deliveries/s received by the N readers, p50/p99 delivery latency (publish to receipt,
measured by `--probes` readers that decode every message), updates the server dropped, and how
much the stalled client changed the others' rate. Implementations:

- `managed`: the service's app (`app.main.create_app`) under `market-api`'s server; broadcast
  through `WebSocketManager.broadcast` on the `alerts` topic.
- `naive`: FastAPI's documented ConnectionManager: a list of sockets and `await send_text` to each
  in turn, under the same uvicorn settings.

Targets (managed, 1,000 subscribers): >= 100,000 deliveries/s, p99 < 50 ms, a stalled client
changes the others' rate by < 10 %, idle RSS < 100 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import resource
import socket
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, cast

import httpx
import orjson
import psutil
import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from devstack.process import ManagedProcess, free_port

TOPIC = "alerts"
FILL_TOPIC = "tickers.ETHUSDT"
TICK = 0.01


# ---------------------------------------------------------------------------------------- server
class NaiveConnectionManager:
    """FastAPI's documentation example ("Handling disconnections and multiple clients")."""

    def __init__(self) -> None:
        self.active_connections: list[WebSocket] = []

    async def connect(self, websocket: WebSocket) -> None:
        await websocket.accept()
        self.active_connections.append(websocket)

    def disconnect(self, websocket: WebSocket) -> None:
        self.active_connections.remove(websocket)

    async def broadcast(self, message: str) -> None:
        for connection in self.active_connections:
            await connection.send_text(message)


def naive_app() -> FastAPI:
    app = FastAPI()
    manager = NaiveConnectionManager()
    app.state.naive = manager

    @app.websocket("/ws/dashboard")
    async def endpoint(websocket: WebSocket) -> None:
        await manager.connect(websocket)
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            manager.disconnect(websocket)

    return app


class Publisher:
    """Publishes `rate` messages/s for `seconds` s, catching up when a publish was slow."""

    def __init__(self) -> None:
        self.published = 0
        self.running = False
        self.task: asyncio.Task[None] | None = None

    async def run(
        self, publish: Callable[[bytes], Awaitable[None] | None], rate: float, seconds: float
    ) -> None:
        self.running = True
        self.published = 0
        start = time.perf_counter()
        try:
            while (elapsed := time.perf_counter() - start) < seconds:
                due = int(rate * elapsed) + 1
                while self.published < due:
                    payload = orjson.dumps({"seq": self.published, "t": time.time_ns()})
                    result = publish(payload)
                    if result is not None:
                        await result
                    self.published += 1
                await asyncio.sleep(TICK)
        finally:
            self.running = False


def add_bench_routes(app: FastAPI, impl: str) -> None:
    publisher = Publisher()

    def publish_one(payload: bytes) -> Awaitable[None] | None:
        if impl == "managed":
            app.state.services.ws.broadcast(TOPIC, orjson.Fragment(payload))
            return None
        text = b'{"topic":"alerts","data":' + payload + b"}"
        naive: NaiveConnectionManager = app.state.naive
        return naive.broadcast(text.decode())

    @app.post("/bench/publish")
    async def start(rate: float, seconds: float) -> dict[str, Any]:
        publisher.task = asyncio.create_task(publisher.run(publish_one, rate, seconds))
        return {"started": True}

    @app.post("/bench/fill")
    async def fill() -> dict[str, Any]:
        """Fill the socket buffers of the stalled client (the last one connected, the only one
        subscribed to FILL_TOPIC) until its server side can no longer write to it."""
        pad = "x" * 32_000
        for _ in range(2000):
            if impl == "managed":
                ws = app.state.services.ws
                app.state.services.ws.broadcast(FILL_TOPIC, {"pad": pad})
                await asyncio.sleep(0)
                stuck = [c for c in ws.registry.connections() if c.outbox.full_since is not None]
                if stuck:
                    return {"stalled": True}
            else:
                naive: NaiveConnectionManager = app.state.naive
                try:
                    await asyncio.wait_for(naive.active_connections[-1].send_text(pad), 0.5)
                except TimeoutError:
                    return {"stalled": True}
        return {"stalled": False}

    @app.get("/bench/stats")
    async def stats() -> dict[str, Any]:
        if impl == "managed":
            ws = app.state.services.ws
            connections = ws.stats.active_connections
            dropped = sum(ws.stats.messages_dropped.values())
        else:
            connections = len(app.state.naive.active_connections)
            dropped = 0
        return {
            "connections": connections,
            "published": publisher.published,
            "publishing": publisher.running,
            "dropped": dropped,
        }


def serve(impl: str, port: int, subscribers: int) -> None:
    raise_fd_limit(subscribers * 2 + 256)
    from app.ws.server import GracefulServer

    if impl == "managed":
        from app.main import create_app
        from app.settings import Settings

        app = create_app(
            Settings(
                ws_max_connections=subscribers + 16,
                http_max_concurrency=max(2048, subscribers + 64),
                ws_feed_interval=3600,
                # Keep the stalled client stalled (dropping) for the whole measurement.
                ws_slow_consumer_timeout=3600,
                ws_idle_timeout=3600,
                log_level="warning",
            )
        )
    else:
        app = naive_app()
    add_bench_routes(app, impl)
    # The same server options as `market-api` (app/cli.py), for both implementations.
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        lifespan="on",
        backlog=4096,
        ws_per_message_deflate=False,
    )
    server = GracefulServer(config, app) if impl == "managed" else uvicorn.Server(config)
    server.run()


# ---------------------------------------------------------------------------------------- client
def raise_fd_limit(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


def client_frame(opcode: int, payload: bytes) -> bytes:
    """A masked client frame (payloads under 64 KiB)."""
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    length = len(payload)
    header = (
        struct.pack("!BB", 0x80 | opcode, 0x80 | length)
        if length < 126
        else struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    )
    return header + mask + masked


SUBSCRIBE = orjson.dumps({"op": "subscribe", "topics": [TOPIC]})


def handshake(port: int) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET /ws/dashboard HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


class Subscriber(asyncio.Protocol):
    """Counts text frames; a probe also decodes each one and records its delivery latency."""

    def __init__(self, port: int, probe: bool) -> None:
        self.port = port
        self.probe = probe
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.upgraded = False
        self.frames = 0
        self.last = 0.0
        self.latencies_ms: list[float] = []
        self.close_code: int | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(handshake(self.port))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed during the handshake"))

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.upgraded:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            if b" 101 " not in self.buffer[:end]:
                self.ready.set_exception(ConnectionError(bytes(self.buffer[:end]).decode()))
                return
            del self.buffer[: end + 4]
            self.upgraded = True
            assert self.transport is not None
            self.transport.write(client_frame(0x1, SUBSCRIBE))
            self.ready.set_result(None)
        self._parse()

    def _parse(self) -> None:
        buf = self.buffer
        view = memoryview(buf)
        pos, size = 0, len(buf)
        now = time.perf_counter()
        while size - pos >= 2:
            opcode, length = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
            start = pos + 2
            if length == 126:
                if size - pos < 4:
                    break
                length = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            elif length == 127:
                if size - pos < 10:
                    break
                length = struct.unpack_from("!Q", buf, pos + 2)[0]
                start = pos + 10
            end = start + length
            if end > size:
                break
            if opcode == 0x1:
                self.frames += 1
                if self.probe:
                    body = orjson.loads(view[start:end])
                    if "topic" in body:
                        sent = body["data"]["t"]
                        self.latencies_ms.append((time.time_ns() - sent) / 1e6)
            elif opcode == 0x9 and self.transport is not None:  # keepalive ping: answer it
                self.transport.write(client_frame(0xA, bytes(view[start:end])))
            elif opcode == 0x8:
                self.close_code = (buf[start] << 8) | buf[start + 1] if length >= 2 else 1005
            pos = end
        view.release()
        if pos:
            self.last = now
            del buf[:pos]

    def reset(self) -> None:
        self.frames = 0
        self.last = 0.0
        self.latencies_ms.clear()


def stalled_client(port: int) -> socket.socket:
    """Connects, subscribes, then never reads again."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    sock.sendall(handshake(port))
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(4096)
    sock.sendall(
        client_frame(0x1, orjson.dumps({"op": "subscribe", "topics": [TOPIC, FILL_TOPIC]}))
    )
    return sock


# ---------------------------------------------------------------------------------------- driver
@dataclass
class Phase:
    impl: str
    scenario: str
    deliveries_per_s: float
    delivered: int
    expected: int
    p50_ms: float
    p99_ms: float
    dropped: int


async def connect_all(port: int, n: int, probes: int) -> list[Subscriber]:
    loop = asyncio.get_running_loop()
    subscribers: list[Subscriber] = []
    for first in range(0, n, 50):
        batch = []
        for i in range(first, min(n, first + 50)):
            _, proto = await loop.create_connection(
                partial(Subscriber, port, i < probes), "127.0.0.1", port
            )
            batch.append(proto)
        await asyncio.gather(*(s.ready for s in batch))
        subscribers.extend(batch)
    return subscribers


async def wait_for(
    http: httpx.AsyncClient, predicate: Callable[[dict[str, Any]], bool], within: float
) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while True:
        stats: dict[str, Any] = (await http.get("/bench/stats")).json()
        if predicate(stats) or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.05)


async def measure(
    impl: str,
    scenario: str,
    http: httpx.AsyncClient,
    subscribers: list[Subscriber],
    rate: float,
    seconds: float,
) -> Phase:
    for s in subscribers:
        s.reset()
    before = (await http.get("/bench/stats")).json()["dropped"]
    started = time.perf_counter()
    await http.post("/bench/publish", params={"rate": rate, "seconds": seconds})
    # A publisher stuck behind a stalled socket never finishes: bound the wait.
    stats = await wait_for(http, lambda s: not s["publishing"], seconds * 2 + 5)
    expected = stats["published"] * len(subscribers)
    for _ in range(100):  # deliveries still in flight: at most 5 s more
        if sum(s.frames for s in subscribers) >= expected:
            break
        await asyncio.sleep(0.05)
    delivered = sum(s.frames for s in subscribers)
    last = max((s.last for s in subscribers), default=started)
    latencies = sorted(x for s in subscribers for x in s.latencies_ms)
    dropped = (await http.get("/bench/stats")).json()["dropped"] - before
    return Phase(
        impl,
        scenario,
        # Over the publishing window, or longer if deliveries trailed behind it.
        delivered / max(last - started, seconds),
        delivered,
        int(rate * seconds) * len(subscribers),
        statistics.median(latencies) if latencies else float("nan"),
        latencies[int(len(latencies) * 0.99) - 1] if latencies else float("nan"),
        dropped,
    )


async def run_impl(impl: str, args: argparse.Namespace) -> tuple[list[Phase], float]:
    port = free_port()
    argv = [
        sys.executable,
        "-m",
        "bench.ws_fanout",
        "serve",
        impl,
        str(port),
        str(args.subscribers),
    ]
    with tempfile.TemporaryDirectory() as tmp:
        server = ManagedProcess(impl, argv, "127.0.0.1", port, log_path=Path(tmp) / "server.log")
        with server:
            assert server.proc is not None
            process = psutil.Process(server.proc.pid)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                subscribers = await connect_all(port, args.subscribers, args.probes)
                await wait_for(http, lambda s: s["connections"] >= args.subscribers, 30)
                await asyncio.sleep(1.0)
                idle_rss = process.memory_info().rss / 2**20
                phases = [
                    await measure(impl, "baseline", http, subscribers, args.rate, args.seconds)
                ]
                stalled = stalled_client(port)
                await wait_for(http, lambda s: s["connections"] > args.subscribers, 30)
                await asyncio.sleep(0.5)
                if not (await http.post("/bench/fill")).json()["stalled"]:
                    raise RuntimeError(f"{impl}: could not stall the extra client")
                try:
                    phases.append(
                        await measure(impl, "stalled", http, subscribers, args.rate, args.seconds)
                    )
                finally:
                    stalled.close()
                for s in subscribers:
                    if s.transport is not None:
                        s.transport.abort()
    return phases, idle_rss


def report(results: dict[str, tuple[list[Phase], float]], args: argparse.Namespace) -> None:
    print(
        f"\n## WebSocket fan-out: {args.subscribers} subscribers, {args.rate:g} messages/s "
        f"offered for {args.seconds:g} s ({args.rate * args.subscribers:,.0f} deliveries/s)\n"
    )
    print(
        "| implementation | scenario | deliveries/s | delivered / offered | p50 ms | p99 ms | "
        "dropped | idle RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for impl, (phases, rss) in results.items():
        for p in phases:
            print(
                f"| {impl} | {p.scenario} | {p.deliveries_per_s:,.0f} | "
                f"{p.delivered:,} / {p.expected:,} | {p.p50_ms:.1f} | {p.p99_ms:.1f} | "
                f"{p.dropped:,} | {rss:.1f} |"
            )
    print()
    for impl, (phases, _) in results.items():
        base, stalled = phases
        change = (stalled.deliveries_per_s / base.deliveries_per_s - 1) * 100
        print(f"- {impl}: a stalled client changed the others' delivery rate by {change:+.1f} %")


async def drive(args: argparse.Namespace) -> None:
    raise_fd_limit(args.subscribers + 256)
    results = {impl: await run_impl(impl, args) for impl in args.impl}
    report(results, args)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        impl, port, subscribers = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
        serve(impl, port, subscribers)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=150.0, help="messages/s published")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--probes", type=int, default=10, help="readers that time every message")
    parser.add_argument("--impl", nargs="+", default=["managed", "naive"])
    args = parser.parse_args()
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(drive(args))


if __name__ == "__main__":
    main()
