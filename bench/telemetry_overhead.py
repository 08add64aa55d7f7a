"""Telemetry overhead, measured side by side in one run.

    .venv/bin/python -m bench.telemetry_overhead [--rounds 6] [--seconds 8] [--quick]
        [--http market-api|stock] [--protocols]

1. Throughput of the cached `GET /api/market/movers` under uvicorn, driven by wrk from a second
   process (a Python load generator if wrk is missing), with telemetry on (both metric paths,
   OTLP export of traces and metrics to a local receiver, Prometheus scrapes every 5 s, the
   slow-request rule active) and with `OTEL_SDK_DISABLED=true`, alternating. Target: on/off
   >= 0.85. The app runs on CPU 1, the load generator, the receiver and the scraper on CPU 0.
   uvicorn serves it with the HTTP protocol and concurrency limit `market-api` uses
   (app/http_limits.py); `--http stock` runs uvicorn's own httptools protocol instead, so the
   two figures show what the request-head limits cost.
2. The cost per cache operation of its telemetry: `CacheManager.get` on the memory backend
   with the telemetry hook inside an open request vs the no-op hook. Target: < 10 us.

With `--protocols`, only this instead: the same route and load, telemetry on, served by
market-api's HTTP protocol and by uvicorn's stock one, alternating: what the request-head and
concurrency limits cost on the hot path. Target: market-api / stock >= 0.97 (the noise).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from app import __version__
from app.cache import CacheManager, CircuitBreaker, MemoryBackend
from app.settings import Settings
from devstack.process import free_port, wait_for_port
from telemetry.runtime import TelemetryConfig, build_telemetry

ROUTE = "/api/market/movers"
ROOT = Path(__file__).resolve().parents[1]


def _pin(cpu: int) -> list[str]:
    if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
        return ["taskset", "-c", str(cpu)]
    return []


def http_options(http: str) -> list[str]:
    """uvicorn flags for the HTTP layer: as `market-api` runs it (default limits), or stock."""
    if http == "stock":
        return []
    limit = Settings.model_fields["http_max_concurrency"].default
    return [
        "--http",
        "app.http_limits:LimitedHttpToolsProtocol",
        "--limit-concurrency",
        str(limit),
    ]


@dataclass(frozen=True)
class Served:
    """A running app under uvicorn: its URL and its process (for CPU accounting)."""

    url: str
    pid: int


@contextmanager
def uvicorn_app(
    env: dict[str, str],
    target: str = "app.main:app",
    route: str = ROUTE,
    factory: bool = False,
    http: str = "market-api",
) -> Iterator[str]:
    """`target` (an ASGI app, or with `factory` a function building one) under uvicorn on
    CPU 1, with `http`'s HTTP layer (`http_options`), warmed on `route`."""
    with uvicorn_process(env, target, route, factory, http) as served:
        yield served.url


@contextmanager
def uvicorn_process(
    env: dict[str, str],
    target: str = "app.main:app",
    route: str = ROUTE,
    factory: bool = False,
    http: str = "market-api",
) -> Iterator[Served]:
    """`uvicorn_app`, yielding the process id too."""
    port = free_port()
    argv = [
        *_pin(1),
        sys.executable,
        "-m",
        "uvicorn",
        *(["--factory"] if factory else []),
        target,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        *http_options(http),
    ]
    full_env = {**os.environ, "UPSTREAM_LATENCY_MS": "5", "UPSTREAM_JITTER_MS": "0", **env}
    # taskset execs the interpreter, so the child keeps this pid.
    proc = subprocess.Popen(argv, env=full_env, cwd=ROOT)
    try:
        wait_for_port("127.0.0.1", port, timeout=30)
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):  # warm: cache filled, code paths hot
            httpx.get(url + route).raise_for_status()
        yield Served(url, proc.pid)
    finally:
        proc.terminate()
        proc.wait(15)


def cpu_seconds(processes: Sequence[psutil.Process]) -> float:
    """User + system CPU time of whole processes (every thread), those still running."""
    total = 0.0
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


@contextmanager
def receiver() -> Iterator[str]:
    """The local OTLP/HTTP receiver (real protobuf decoding) in its own process, on CPU 0."""
    code = (
        "import time\n"
        "from tests.support.otlp_receiver import OtlpReceiver\n"
        "with OtlpReceiver() as r:\n"
        "    print(r.port, flush=True)\n"
        "    time.sleep(100000)\n"
    )
    proc = subprocess.Popen(
        [*_pin(0), sys.executable, "-c", code],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        actual = int(proc.stdout.readline())
        wait_for_port("127.0.0.1", actual)
        yield f"http://127.0.0.1:{actual}"
    finally:
        proc.terminate()
        proc.wait(10)


class Scraper:
    """Scrapes /metrics every `interval` seconds, as Prometheus would."""

    def __init__(self, url: str, interval: float = 5.0) -> None:
        self.url, self.interval = url, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.scrapes = 0

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            httpx.get(self.url + "/metrics").raise_for_status()
            self.scrapes += 1

    def __enter__(self) -> Scraper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)


def drive(
    url: str,
    seconds: float,
    connections: int = 32,
    route: str = ROUTE,
    headers: dict[str, str] | None = None,
) -> float:
    """Requests per second of the load generator over `seconds` (2xx and 3xx answers only)."""
    wrk = shutil.which("wrk")
    if wrk:
        header_args = [arg for k, v in (headers or {}).items() for arg in ("-H", f"{k}: {v}")]
        out = subprocess.run(
            [
                *_pin(0),
                wrk,
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",  # wrk takes whole seconds
                *header_args,
                url + route,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        if "Non-2xx" in out:
            raise RuntimeError(f"errors under load:\n{out}")
        match = re.search(r"Requests/sec:\s+([\d.]+)", out)
        assert match, out
        return float(match.group(1))
    return asyncio.run(_python_load(url, seconds, connections, route, headers or {}))


async def _python_load(
    url: str, seconds: float, connections: int, route: str, headers: dict[str, str]
) -> float:
    done = 0
    deadline = time.monotonic() + seconds
    limits = httpx.Limits(max_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, headers=headers) as client:

        async def worker() -> None:
            nonlocal done
            while time.monotonic() < deadline:
                (await client.get(route)).raise_for_status()
                done += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
    return done / seconds


def throughput(rounds: int, seconds: float, http: str) -> None:
    print(f"\n## 1. {ROUTE} throughput, telemetry on vs OTEL_SDK_DISABLED=true ({http} HTTP)")
    print(f"load: {'wrk -t1 -c32' if shutil.which('wrk') else 'python load generator, 32 conn'}")
    results: dict[str, list[float]] = {"on": [], "off": []}
    with receiver() as otlp:
        modes = {
            "off": {"OTEL_SDK_DISABLED": "true"},
            "on": {
                "OTEL_EXPORTER_OTLP_ENDPOINT": otlp,
                "OTEL_METRIC_EXPORT_INTERVAL": "5000",
            },
        }
        for i in range(rounds):
            order = ("off", "on") if i % 2 == 0 else ("on", "off")
            for mode in order:
                with uvicorn_app(modes[mode], http=http) as url:
                    if mode == "on":
                        with Scraper(url, interval=min(5.0, seconds / 2)) as scraper:
                            rps = drive(url, seconds)
                        assert scraper.scrapes >= 1
                        metrics = httpx.get(url + "/metrics").text
                        assert "http_server_request_duration_seconds_bucket" in metrics
                    else:
                        rps = drive(url, seconds)
                results[mode].append(rps)
                print(f"round {i + 1} {mode:>3}: {rps:8.0f} req/s")
    on, off = statistics.median(results["on"]), statistics.median(results["off"])
    print(
        f"median: on {on:.0f} req/s, off {off:.0f} req/s -> on/off = {on / off:.3f} "
        "(target >= 0.85; the stock opentelemetry-instrumentation-fastapi setup: about 0.40)"
    )


def protocol_cost(rounds: int, seconds: float) -> None:
    print(f"\n## {ROUTE} throughput, market-api's HTTP protocol vs uvicorn's stock one")
    results: dict[str, list[float]] = {"market-api": [], "stock": []}
    with receiver() as otlp:
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp, "OTEL_METRIC_EXPORT_INTERVAL": "5000"}
        for i in range(rounds):
            order = ("market-api", "stock") if i % 2 == 0 else ("stock", "market-api")
            for http in order:
                with uvicorn_app(env, http=http) as url:
                    rps = drive(url, seconds)
                results[http].append(rps)
                print(f"round {i + 1} {http:>10}: {rps:8.0f} req/s")
    ours, stock = statistics.median(results["market-api"]), statistics.median(results["stock"])
    print(
        f"median: market-api {ours:.0f} req/s, stock {stock:.0f} req/s -> "
        f"market-api / stock = {ours / stock:.3f} (target >= 0.97)"
    )


async def cache_op_cost(n: int, rounds: int) -> None:
    print("\n## 2. telemetry cost per cache operation (memory backend, inside a request root)")
    telemetry = build_telemetry(TelemetryConfig(service_version=__version__, keep_ratio=0.05))
    telemetry.start()
    try:
        plain = CacheManager(memory=MemoryBackend(10_000, 64 << 20), key_prefix="b")
        breaker = CircuitBreaker(failure_threshold=5, cooldown=5.0)
        traced = CacheManager(
            memory=MemoryBackend(10_000, 64 << 20),
            key_prefix="b",
            breaker=breaker,
            instrumentation=telemetry.cache_instrumentation(breaker),
        )
        telemetry.observe_cache(traced)
        for manager in (plain, traced):
            await manager.set("market", "k", {"price": 1.0})
        from opentelemetry.trace import SpanKind

        async def run(manager: CacheManager) -> float:
            root = telemetry.roots.open("GET /bench", SpanKind.SERVER)
            start = time.perf_counter()
            for _ in range(n):
                await manager.get("market", "k")
            elapsed = time.perf_counter() - start
            telemetry.roots.settle(root, False)
            telemetry.roots.close(root)
            return elapsed / n * 1e6

        await run(plain)
        await run(traced)
        samples: dict[str, list[float]] = {"plain": [], "traced": []}
        for _ in range(rounds):
            samples["plain"].append(await run(plain))
            samples["traced"].append(await run(traced))
        p, t = statistics.median(samples["plain"]), statistics.median(samples["traced"])
        print(
            f"get hit: no-op hook {p:.2f} us, telemetry hook {t:.2f} us -> "
            f"{t - p:.2f} us per operation (target < 10 us)"
        )
    finally:
        await telemetry.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--quick", action="store_true", help="2 rounds of 2 s, to check it runs")
    parser.add_argument(
        "--http",
        choices=("market-api", "stock"),
        default="market-api",
        help="HTTP protocol: market-api's (head limits, concurrency limit) or uvicorn's stock one",
    )
    parser.add_argument(
        "--protocols",
        action="store_true",
        help="only compare market-api's HTTP protocol with uvicorn's stock one",
    )
    args = parser.parse_args()
    rounds, seconds = (2, 2.0) if args.quick else (args.rounds, args.seconds)
    if args.protocols:
        protocol_cost(rounds, seconds)
        return
    throughput(rounds, seconds, args.http)
    asyncio.run(cache_op_cost(2_000 if args.quick else 20_000, 3 if args.quick else 9))


if __name__ == "__main__":
    main()
