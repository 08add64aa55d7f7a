"""Cached routes against the framework floor, side by side in one run.

    .venv/bin/python -m bench.http_floor [--rounds 5] [--seconds 8] [--only NAME,NAME]

Every contender serves `GET /api/market/movers` under uvicorn pinned to CPU 1 and is driven by
`wrk -t1 -c32` pinned to CPU 0 (with the OTLP receiver, the `/metrics` scraper and memcached).
Rounds are interleaved (each round runs every contender, in an order rotated by one per round)
and the medians are compared, so a noisy neighbour hits every contender alike. Contenders:

- `floor`: a bare FastAPI route returning the service's own answer as precomputed bytes (= 1.00);
- `memory/off`, `memory/on`, `memcached/off`, `memcached/on`: this service with the in-memory
  cache or memcached, with telemetry off (`OTEL_SDK_DISABLED=true`) or on (OTLP/HTTP export of
  traces and metrics to a local receiver, `/metrics` scraped every 5 s, the slow-request rule);
  `memcached/on` is the production configuration;
- `memcached/on/304`: the production configuration answering `If-None-Match` with 304 (the
  market TTL is raised so the ETag stays the same for the whole run);
- `fastapi-cache2/memory`, `fastapi-cache2/memcached`: the same answer behind fastapi-cache2
  0.2.2's `@cache` with its in-memory backend and its memcached backend (aiomcache); these need
  the `bench` extra (`pip install -e '.[bench]'`) and are skipped without it.

Prints req/s per round, then each median as a share of the floor's median.

Then telemetry on / off once more, paired (`--paired N` rounds, 0 to skip): the two servers of a
backend run at the same time, both on CPU 1, each driven by its own `wrk -t1 -c16` on CPU 0, and
the ratio is their requests per CPU-second (user + system time of each whole process, export
threads included). The scheduler shares the core, so a noisy neighbour or a frequency change
hits both servers in the same second: the per-round spread is a few per cent, against the
+/-25 % of consecutive rounds on this kind of VM.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import tempfile
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from bench.telemetry_overhead import (
    ROUTE,
    Scraper,
    cpu_seconds,
    drive,
    receiver,
    uvicorn_app,
    uvicorn_process,
)
from devstack.memcached import memcached_process

TARGETS = {
    "memcached/on": 0.80,
    "memory/off": 0.90,
    "memory/on": 0.90,
}
"""Share of the floor each configuration must keep (telemetry on/off is checked separately)."""


@dataclass(frozen=True)
class Contender:
    name: str
    target: str
    env: dict[str, str] = field(default_factory=dict)
    factory: bool = False
    scraped: bool = False
    revalidate: bool = False
    needs: str | None = None
    """A module the contender imports (an optional extra), or None."""


def contenders(otlp: str, memcached: str, body_file: str) -> list[Contender]:
    off = {"OTEL_SDK_DISABLED": "true"}
    on = {"OTEL_EXPORTER_OTLP_ENDPOINT": otlp, "OTEL_METRIC_EXPORT_INTERVAL": "5000"}
    shared = {"MEMCACHED_SERVERS": memcached}
    service = "app.main:app"
    return [
        Contender("floor", "bench.floor_apps:bare", {"FLOOR_BODY_FILE": body_file}, factory=True),
        Contender("memory/off", service, off),
        Contender("memory/on", service, on, scraped=True),
        Contender("memcached/off", service, {**shared, **off}),
        Contender("memcached/on", service, {**shared, **on}, scraped=True),
        Contender(
            "memcached/on/304",
            service,
            {**shared, **on, "MARKET_TTL": "3600"},
            scraped=True,
            revalidate=True,
        ),
        Contender(
            "fastapi-cache2/memory",
            "bench.floor_apps:fastapi_cache",
            factory=True,
            needs="fastapi_cache",
        ),
        Contender(
            "fastapi-cache2/memcached",
            "bench.floor_apps:fastapi_cache",
            {"FLOOR_MEMCACHED": memcached},
            factory=True,
            needs="aiomcache",
        ),
    ]


def service_answer(path: Path) -> None:
    """Write the service's movers answer to `path`: the floor sends exactly these bytes."""
    with uvicorn_app({"OTEL_SDK_DISABLED": "true"}) as url:
        path.write_bytes(httpx.get(url + ROUTE).raise_for_status().content)


def run_one(contender: Contender, seconds: float) -> float:
    with uvicorn_app(contender.env, contender.target, factory=contender.factory) as url:
        headers: dict[str, str] = {}
        if contender.revalidate:
            etag = httpx.get(url + ROUTE).headers["etag"]
            headers["If-None-Match"] = etag
            response = httpx.get(url + ROUTE, headers=headers)
            assert response.status_code == 304, response.status_code
        with ExitStack() as stack:
            scraper = stack.enter_context(Scraper(url)) if contender.scraped else None
            rps = drive(url, seconds, headers=headers)
        if scraper is not None and seconds >= scraper.interval:
            assert scraper.scrapes >= 1
        return rps


def paired_round(off: Contender, on: Contender, seconds: float) -> tuple[float, float]:
    """`off` and `on` served at once on CPU 1, each loaded by its own wrk: the throughput ratio
    on / off and the ratio of requests per CPU-second, on / off."""
    with ExitStack() as stack:
        servers = [stack.enter_context(uvicorn_process(c.env, c.target)) for c in (off, on)]
        if on.scraped:
            stack.enter_context(Scraper(servers[1].url))
        rps: dict[int, float] = {}

        def load(index: int) -> None:
            rps[index] = drive(servers[index].url, seconds, connections=16)

        processes = [psutil.Process(s.pid) for s in servers]
        before = [cpu_seconds([p]) for p in processes]
        loaders = [threading.Thread(target=load, args=(i,)) for i in range(2)]
        for loader in loaders:
            loader.start()
        for loader in loaders:
            loader.join()
        used = [cpu_seconds([p]) - b for p, b in zip(processes, before, strict=True)]
    if len(rps) != 2:
        raise RuntimeError("a load generator failed; see above")
    per_cpu = (rps[1] / used[1]) / (rps[0] / used[0])
    return rps[1] / rps[0], per_cpu


def paired(chosen: list[Contender], rounds: int, seconds: float) -> dict[str, list[float]]:
    """Per backend, the per-CPU on / off ratio of each paired round."""
    by_name = {c.name: c for c in chosen}
    ratios: dict[str, list[float]] = {}
    for backend in ("memory", "memcached"):
        off, on = by_name.get(f"{backend}/off"), by_name.get(f"{backend}/on")
        if off is None or on is None:
            continue
        for i in range(rounds):
            throughput, per_cpu = paired_round(off, on, seconds)
            ratios.setdefault(backend, []).append(per_cpu)
            print(
                f"paired round {i + 1} {backend:>9}: on / off {per_cpu:.3f} per CPU-second "
                f"({throughput:.3f} in requests)",
                flush=True,
            )
    return ratios


@contextmanager
def environment() -> Iterator[list[Contender]]:
    with tempfile.TemporaryDirectory() as tmp, receiver() as otlp:
        body = Path(tmp) / "movers.json"
        service_answer(body)
        with memcached_process(log_path=Path(tmp) / "memcached.log") as memcached:
            yield contenders(otlp, memcached.address, str(body))


def report(results: dict[str, list[float]], pairs: dict[str, list[float]]) -> None:
    medians = {name: statistics.median(rps) for name, rps in results.items() if rps}
    floor = medians.get("floor")
    print("\n| contender | median req/s | share of the floor | target |")
    print("|---|---|---|---|")
    for name, median in medians.items():
        share = f"{median / floor:.2f}" if floor else "-"
        target = f">= {TARGETS[name]:.2f}" if name in TARGETS else ""
        print(f"| {name} | {median:.0f} | {share} | {target} |")
    for backend in ("memory", "memcached"):
        on, off = medians.get(f"{backend}/on"), medians.get(f"{backend}/off")
        if on and off:
            print(f"{backend}: telemetry on / off = {on / off:.3f} (target >= 0.85)")
    for backend, ratios in pairs.items():
        print(
            f"{backend}: telemetry on / off, paired = {statistics.median(ratios):.3f} "
            f"(median of {len(ratios)}, range {min(ratios):.3f}-{max(ratios):.3f}; "
            "target >= 0.85)"
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=8, help="per contender and round")
    parser.add_argument("--only", default="", help="comma-separated contender names (and floor)")
    parser.add_argument(
        "--paired", type=int, default=5, help="paired telemetry on/off rounds per backend (0: none)"
    )
    args = parser.parse_args(argv)
    print(f"load: {'wrk -t1 -c32' if shutil.which('wrk') else 'python load generator, 32 conn'}")
    with environment() as everyone:
        wanted = {n for n in args.only.split(",") if n} | {"floor"} if args.only else None
        chosen = [c for c in everyone if wanted is None or c.name in wanted]
        for contender in chosen:
            if contender.needs and importlib.util.find_spec(contender.needs) is None:
                print(f"skipping {contender.name}: install the bench extra")
        chosen = [c for c in chosen if not c.needs or importlib.util.find_spec(c.needs)]
        results: dict[str, list[float]] = {c.name: [] for c in chosen}
        for i in range(args.rounds):
            shift = i % len(chosen)
            for contender in chosen[shift:] + chosen[:shift]:
                rps = run_one(contender, args.seconds)
                results[contender.name].append(rps)
                print(f"round {i + 1} {contender.name:>26}: {rps:8.0f} req/s", flush=True)
        pairs = paired(chosen, args.paired, args.seconds)
    report(results, pairs)


if __name__ == "__main__":
    main()
