"""One, two and three replicas behind nginx, side by side in one run.

    .venv/bin/python -m bench.fleet                          # the full run (about 5 minutes)
    .venv/bin/python -m bench.fleet --rounds 1 --seconds 1 --upstream-seconds 2 \\
        --websockets 20 --ws-seconds 1                        # smoke run

Every fleet is what `market-stack --replicas N` runs, without Prometheus and Alertmanager: nginx
(devstack/nginx.py) in front of N `market-api` replicas sharing two memcached nodes, a
redis-server and one exchange simulator (`market-exchange-sim`, over HTTP).

1. Throughput: the fleets of `--replicas` (1,2,3) run at once; each round drives each fleet in
   turn with `wrk -t1 -c64` (pinned to CPU 0, like bench.http_floor; a Python load generator
   without wrk: `make bench-deps` installs it) on `GET /api/market/movers` for `--seconds`, in an
   order rotated by one per round, so a noisy neighbour hits every fleet alike. Reported per
   fleet: the median requests/s, and requests/s per core consumed: requests/s divided by the CPU
   seconds nginx and every replica used during the round (psutil) per wall-clock second. On a
   2-core machine requests/s cannot grow with replicas for long; requests/s per core shows what
   each added replica and the proxy hop cost.
2. Upstream calls: the same dashboard load (`market-load --mix dashboard`, `--upstream-rate`
   requests/s for `--upstream-seconds`) against a fresh fleet of 1 and of 3 replicas (fresh
   memcached nodes each), counting the calls the exchange simulator served: from its `GET /stats`
   when it has one, otherwise from its access log.
3. WebSockets (`--websockets N`, 0 skips it): N subscribers to `alerts` connected through nginx
   to a fleet of 1 and of 3 replicas (bench.ws_fanout's raw-socket subscribers), alert
   notifications POSTed through nginx at `--ws-rate`/s for `--ws-seconds`: each reaches one
   replica, which must relay it through Redis to the others' subscribers. Reported: deliveries/s,
   delivered / expected, and p50/p99 latency from publish to receipt measured by
   `--ws-probes` extra clients that decode every message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson
import psutil
from websockets.asyncio.client import connect

from app.settings import Settings
from bench.telemetry_overhead import cpu_seconds, drive
from bench.ws_fanout import TOPIC, connect_all, raise_fd_limit
from devstack.loadgen import LoadConfig, LoadGenerator
from devstack.memcached import memcached_process
from devstack.nginx import ProxyLimits, nginx_process, write_nginx_config
from devstack.process import ManagedProcess, free_port
from devstack.readiness import HttpReadyProcess
from devstack.redis import redis_process
from devstack.stack import PROXY_ADDRESS

HOST = "127.0.0.1"
ROUTE = "/api/market/movers"
WEBHOOK = "/api/alerts/webhook"


# ---------------------------------------------------------------------- processes
@dataclass
class Backends:
    memcached: list[ManagedProcess]
    redis: ManagedProcess
    exchange: ManagedProcess

    @property
    def env(self) -> dict[str, str]:
        return {
            "MEMCACHED_SERVERS": ",".join(m.address for m in self.memcached),
            "REDIS_URL": f"redis://{self.redis.address}/0",
            "UPSTREAM_URL": f"http://{self.exchange.address}",
        }


@dataclass
class Fleet:
    replicas: list[HttpReadyProcess]
    nginx: HttpReadyProcess

    @property
    def url(self) -> str:
        return self.nginx.url

    def processes(self) -> list[psutil.Process]:
        """nginx's master and workers and every replica: whose CPU time the fleet costs."""
        pids = [p.proc.pid for p in (*self.replicas, self.nginx) if p.proc is not None]
        found = [psutil.Process(pid) for pid in pids]
        return found + [child for p in found for child in p.children(recursive=True)]


@contextlib.contextmanager
def backends(root: Path) -> Iterator[Backends]:
    root.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        nodes = [
            stack.enter_context(memcached_process(log_path=root / f"memcached-{i}.log"))
            for i in (1, 2)
        ]
        redis = stack.enter_context(redis_process(log_path=root / "redis.log"))
        port = free_port()
        argv = [sys.executable, "-c", "from devstack.exchange_sim import main; main()"]
        exchange = ManagedProcess(
            "exchange-sim",
            [*argv, "--host", HOST, "--port", str(port)],
            HOST,
            port,
            log_path=root / "exchange-sim.log",
        )
        stack.enter_context(exchange)
        yield Backends(nodes, redis, exchange)


@contextlib.contextmanager
def fleet(size: int, shared: Backends, root: Path) -> Iterator[Fleet]:
    root.mkdir(parents=True, exist_ok=True)
    with contextlib.ExitStack() as stack:
        replicas = []
        for index in range(size):
            port = free_port()
            env = {
                **shared.env,
                "APP_HOST": HOST,
                "APP_PORT": str(port),
                "LOG_LEVEL": "warning",
                "FORWARDED_ALLOW_IPS": PROXY_ADDRESS,
                "OTEL_RESOURCE_ATTRIBUTES": f"service.instance.id={HOST}:{port}",
            }
            replica = HttpReadyProcess(
                f"replica-{index + 1}",
                [sys.executable, "-c", "from app.cli import main; main()"],
                HOST,
                port,
                ready_path="/api/monitoring/performance/health",
                log_path=root / f"replica-{index + 1}.log",
                env=env,
            )
            replicas.append(stack.enter_context(replica))
        nginx_port = free_port()
        config = write_nginx_config(
            root / "nginx",
            listen=f"{HOST}:{nginx_port}",
            replicas=[r.address for r in replicas],
            limits=ProxyLimits.for_app(Settings()),
            bind_address=PROXY_ADDRESS,
        )
        nginx = stack.enter_context(nginx_process(root / "nginx", config, nginx_port))
        yield Fleet(replicas, nginx)


# ---------------------------------------------------------------------- 1. throughput
@dataclass
class Round:
    requests_per_s: float
    cores: float
    """CPU seconds of nginx and the replicas per wall-clock second of the round."""

    @property
    def per_core(self) -> float:
        return self.requests_per_s / self.cores if self.cores else float("nan")


def throughput(sizes: Sequence[int], rounds: int, seconds: float, root: Path) -> None:
    results: dict[int, list[Round]] = {size: [] for size in sizes}
    with backends(root / "shared") as shared, contextlib.ExitStack() as stack:
        fleets = {
            size: stack.enter_context(fleet(size, shared, root / f"fleet-{size}")) for size in sizes
        }
        for running in fleets.values():  # warm every cache tier before measuring
            drive(running.url, 1, route=ROUTE)
        for number in range(rounds):
            order = list(sizes[number % len(sizes) :]) + list(sizes[: number % len(sizes)])
            for size in order:
                processes = fleets[size].processes()
                cpu_before, started = cpu_seconds(processes), time.monotonic()
                rate = drive(fleets[size].url, seconds, connections=64, route=ROUTE)
                wall = time.monotonic() - started
                result = Round(rate, (cpu_seconds(processes) - cpu_before) / wall)
                results[size].append(result)
                print(
                    f"round {number + 1} {size} replica(s): {rate:,.0f} req/s, "
                    f"{result.cores:.2f} cores, {result.per_core:,.0f} req/s per core",
                    flush=True,
                )
    print("\nmedians (GET /api/market/movers through nginx):")
    base = statistics.median(r.requests_per_s for r in results[sizes[0]])
    for size in sizes:
        rate = statistics.median(r.requests_per_s for r in results[size])
        per_core = statistics.median(r.per_core for r in results[size])
        cores = statistics.median(r.cores for r in results[size])
        print(
            f"  {size} replica(s): {rate:>9,.0f} req/s ({rate / base:.2f}x), {cores:.2f} cores, "
            f"{per_core:>9,.0f} req/s per core"
        )


# ---------------------------------------------------------------------- 2. upstream calls
def exchange_calls(exchange: ManagedProcess) -> int:
    """Calls the simulator served: its own counter when it has one, else its access log."""
    try:
        answer = httpx.get(f"http://{exchange.address}/stats", timeout=5)
        if answer.status_code == 200:
            total: int = answer.json()["total"]
            return total
    except (httpx.HTTPError, KeyError, ValueError):
        pass
    assert exchange.log_path is not None
    served = re.compile(r'"GET /(tickers|history)\b[^"]*" 200')
    return sum(1 for line in exchange.log_path.read_text().splitlines() if served.search(line))


def upstream_calls(sizes: Sequence[int], rate: float, seconds: float, root: Path) -> None:
    print(f"\nupstream calls for the same dashboard load ({rate:g} req/s for {seconds:g} s):")
    for size in sizes:
        where = root / f"upstream-{size}"
        with backends(where) as shared, fleet(size, shared, where / "fleet") as running:
            before = exchange_calls(shared.exchange)
            config = LoadConfig(
                url=running.url, rate=rate, duration=seconds, mix="dashboard", seed=7
            )
            stats = asyncio.run(LoadGenerator(config).run())
            calls = exchange_calls(shared.exchange) - before
            print(
                f"  {size} replica(s): {calls} exchange calls for {stats.ok} answered requests "
                f"({stats.errors} errors)"
            )


# ---------------------------------------------------------------------- 3. WebSockets
def notification(sent_ns: int) -> bytes:
    """An Alertmanager version 4 notification whose group key carries its send time."""
    alert = {
        "status": "firing",
        "labels": {"alertname": "BenchFanout", "severity": "info"},
        "annotations": {},
        "startsAt": "2026-01-01T00:00:00Z",
    }
    return orjson.dumps(
        {
            "version": "4",
            "groupKey": f"bench:{sent_ns}",
            "status": "firing",
            "receiver": "bench",
            "alerts": [alert],
        }
    )


async def _probe(url: str, latencies_ms: list[float], ready: asyncio.Event) -> None:
    async with connect(url, compression=None, open_timeout=10, max_queue=None) as ws:
        await ws.send(orjson.dumps({"op": "subscribe", "topics": [TOPIC]}).decode())
        ready.set()
        async for raw in ws:
            body = orjson.loads(raw)
            key = body.get("data", {}).get("groupKey", "") if "topic" in body else ""
            if key.startswith("bench:"):
                latencies_ms.append((time.time_ns() - int(key[6:])) / 1e6)


async def websocket_fanout(
    size: int, subscribers: int, probes: int, rate: float, seconds: float, root: Path
) -> None:
    """Deliveries/s and latency of `alerts` broadcasts to `subscribers` sockets spread by nginx
    over `size` replicas (`probes` of them time each delivery, the rest count frames); each
    notification enters at one replica and crosses Redis to the rest. The probes are part of
    the `subscribers`, so one replica holds them all within its default WS_MAX_CONNECTIONS."""
    raise_fd_limit(subscribers + 256)
    with backends(root) as shared, fleet(size, shared, root / "fleet") as running:
        port = running.nginx.port
        counters = await connect_all(port, subscribers - probes, 0)
        latencies: list[float] = []
        events = [asyncio.Event() for _ in range(probes)]
        ws_url = f"ws://{HOST}:{port}/ws/dashboard"
        tasks = [asyncio.create_task(_probe(ws_url, latencies, e)) for e in events]
        try:
            async with asyncio.timeout(30):  # a probe refused (1013) must not hang the run
                await asyncio.gather(*(e.wait() for e in events))
            await asyncio.sleep(1.0)  # every subscribe acknowledged and registered
            for s in counters:
                s.reset()
            published = 0
            started = time.perf_counter()
            headers = {"content-type": "application/json"}
            async with httpx.AsyncClient(base_url=running.url, timeout=10) as http:
                while (elapsed := time.perf_counter() - started) < seconds:
                    body = notification(time.time_ns())
                    answer = await http.post(WEBHOOK, content=body, headers=headers)
                    published += answer.status_code == 200
                    await asyncio.sleep(max(0.0, published / rate - elapsed))
            expected = published * len(counters)
            for _ in range(100):  # deliveries still in flight: at most 5 s more
                if sum(s.frames for s in counters) >= expected:
                    break
                await asyncio.sleep(0.05)
            delivered = sum(s.frames for s in counters)
            last = max((s.last for s in counters), default=started)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            for s in counters:
                if s.transport is not None:
                    s.transport.abort()
    ordered = sorted(latencies)
    p50 = statistics.median(ordered) if ordered else float("nan")
    p99 = ordered[max(0, int(len(ordered) * 0.99) - 1)] if ordered else float("nan")
    print(
        f"  {size} replica(s): {delivered / max(last - started, seconds):>9,.0f} deliveries/s, "
        f"{delivered}/{expected} delivered, p50 {p50:.1f} ms, p99 {p99:.1f} ms"
    )


# ---------------------------------------------------------------------- command line
def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--replicas", default="1,2,3", help="fleet sizes compared (1,2,3)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=10.0, help="per fleet per round")
    parser.add_argument("--upstream-rate", type=float, default=50.0)
    parser.add_argument("--upstream-seconds", type=float, default=60.0)
    parser.add_argument("--websockets", type=int, default=1000, help="subscribers; 0 skips")
    parser.add_argument("--ws-probes", type=int, default=20)
    parser.add_argument("--ws-rate", type=float, default=100.0, help="notifications per second")
    parser.add_argument("--ws-seconds", type=float, default=10.0)
    parser.add_argument("--workdir", type=Path, help="keep every process's logs here")
    args = parser.parse_args(argv)
    sizes = [int(size) for size in args.replicas.split(",")]
    load = "wrk -t1 -c64" if shutil.which("wrk") else "python load generator, 64 connections"
    print(f"load: {load}; fleets of {sizes} replicas behind nginx", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench-fleet-") as tmp:
        root = args.workdir or Path(tmp)
        throughput(sizes, args.rounds, args.seconds, root / "throughput")
        edges = [sizes[0], sizes[-1]] if len(sizes) > 1 else sizes
        upstream_calls(edges, args.upstream_rate, args.upstream_seconds, root)
        if args.websockets:
            print(
                f"\nWebSocket fan-out: {args.websockets} subscribers to `{TOPIC}` through nginx, "
                f"{args.ws_rate:g} notifications/s for {args.ws_seconds:g} s:"
            )
            for size in edges:
                asyncio.run(
                    websocket_fanout(
                        size,
                        args.websockets,
                        args.ws_probes,
                        args.ws_rate,
                        args.ws_seconds,
                        root / f"websockets-{size}",
                    )
                )


if __name__ == "__main__":
    main()
