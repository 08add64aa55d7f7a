"""Instructions per cached request, counted by valgrind: a figure a noisy machine cannot move.

    .venv/bin/python -m bench.hit_instructions [--requests 2000] [--only floor,memory/off]

Each contender is driven in process (ASGI calls, no server, no sockets) under `valgrind
--tool=callgrind` twice, with 100 and with 100 + `--requests` requests to `GET
/api/market/movers`; the difference of the two instruction totals divided by `--requests` is
the cost of one request, start-up and warm-up cancelled out; TTLs and the version refresh are
raised so that every measured request is a hit. Contenders: `floor` (a bare FastAPI
route returning the same bytes), and this service with the in-memory cache or memcached (a
local server; the near-cache in front), telemetry off or on (the pipeline of a default start,
without an export endpoint: exporting is a background thread, not per-request work).

It needs valgrind (Debian package `valgrind`) and takes a minute or two per contender; it counts
instructions, not time, so it can run beside other work.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from devstack.memcached import memcached_process

ROUTE = "/api/market/movers"
WARMUP = 100
CONTENDERS = ("floor", "memory/off", "memory/on", "memcached/off", "memcached/on")


async def _call(app: Any, path: str) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"bench")],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    status: list[int] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            status.append(message["status"])

    await app(scope, receive, send)
    return status[0]


def _build(contender: str, memcached: str) -> Any:
    if contender == "floor":
        from bench.floor_apps import bare

        return bare()
    from app.main import create_app
    from app.settings import Settings

    backend, telemetry = contender.split("/")
    # Long TTLs and version refresh: under valgrind a run lasts long enough for the defaults to
    # expire every few hundred requests (at full speed, once in tens of thousands), and each
    # expiry's full route pass would be counted as part of a hit.
    settings = Settings(
        upstream_latency_ms=0.0,
        upstream_jitter_ms=0.0,
        memcached_servers=memcached if backend == "memcached" else "",
        market_ttl=3600,
        cache_version_refresh=60,
    )
    if telemetry == "off":
        return create_app(settings, telemetry=None)
    return create_app(settings)


async def _child(contender: str, requests: int, memcached: str) -> None:
    app = _build(contender, memcached)
    async with app.router.lifespan_context(app):
        for _ in range(WARMUP):
            assert await _call(app, ROUTE) == 200
        for _ in range(requests):
            await _call(app, ROUTE)


def _instructions(contender: str, requests: int, memcached: str, env: dict[str, str]) -> int:
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
    argv += ["-m", "bench.hit_instructions", "--child", contender, "--requests", str(requests)]
    argv += ["--memcached", memcached]
    out = subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stderr
    match = re.search(r"Collected : (\d+)", out)
    assert match, out
    return int(match.group(1))


def _service_body() -> bytes:
    """The service's own answer, for the floor to send."""
    from app.main import create_app
    from app.settings import Settings

    async def fetch() -> bytes:
        app = create_app(Settings(), telemetry=None)
        body: list[bytes] = []
        async with app.router.lifespan_context(app):

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.body":
                    body.append(message["body"])

            scope = {"type": "http", "method": "GET", "path": ROUTE, "query_string": b""}
            scope |= {"headers": [], "scheme": "http", "root_path": "", "raw_path": ROUTE.encode()}
            await app(scope, receive, send)
        return b"".join(body)

    return asyncio.run(fetch())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--requests", type=int, default=2000, help="enough for garbage collections to average out"
    )
    parser.add_argument("--only", default="", help="comma-separated contenders")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--memcached", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        asyncio.run(_child(args.child, args.requests, args.memcached))
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is needed: apt-get install valgrind")
    chosen = [c for c in CONTENDERS if not args.only or c in args.only.split(",")]
    with tempfile.TemporaryDirectory() as tmp, memcached_process() as memcached:
        body = Path(tmp) / "movers.json"
        body.write_bytes(_service_body())
        env = {**os.environ, "FLOOR_BODY_FILE": str(body)}
        results: dict[str, float] = {}
        for contender in chosen:
            low = _instructions(contender, 0, memcached.address, env)
            high = _instructions(contender, args.requests, memcached.address, env)
            results[contender] = (high - low) / args.requests
            print(f"{contender:>14}: {results[contender]:10,.0f} instructions per request")
    floor = results.get("floor")
    if floor:
        print(
            "\nfloor / contender, application code only (the HTTP server and the kernel, which "
            "every contender pays alike, come on top):"
        )
        for contender, count in results.items():
            print(f"{contender:>14}: {floor / count:.2f}")


if __name__ == "__main__":
    main()
