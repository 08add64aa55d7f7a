"""Cache benchmarks, measured side by side in one run.

    .venv/bin/python -m bench.cache_bench [--quick]

1. get/set through the manager vs a raw pymemcache client on the same memcached, called the way
   an asyncio service has to call it (`run_in_executor`, same pool size), plus the plain blocking
   call for reference. Target: manager <= 1.5x the raw async call.
2. A memory-backend hit through the manager vs `cachetools.TTLCache` behind an async function.
3. Upstream calls for the same synthetic dashboard load with the cache on and off.
   Target: >= 95 % fewer with the cache on.
4. Event-loop lag with memcached replaced by a listener that never answers.

Each comparison interleaves its contenders in rounds, so machine noise hits both alike; the
ratios are what to read, the absolute figures depend on the machine.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import cachetools
import httpx
import orjson
from pymemcache.client.base import PooledClient

from app.cache import CacheManager, CircuitBreaker, MemcachedBackend, MemoryBackend
from app.main import create_app
from app.settings import Settings
from devstack.memcached import memcached_process
from tests.support.app_client import running_app
from tests.support.hung_server import HungServer
from tests.support.loop_lag import LoopLagProbe

Op = Callable[[int], Awaitable[Any]]


async def per_op_us(op: Op, n: int) -> float:
    start = time.perf_counter()
    for i in range(n):
        await op(i)
    return (time.perf_counter() - start) / n * 1e6


async def interleave(ops: dict[str, Op], n: int, rounds: int) -> dict[str, float]:
    """Median microseconds per call of each op over `rounds` interleaved rounds."""
    for op in ops.values():
        await per_op_us(op, max(50, n // 10))  # warm up
    samples: dict[str, list[float]] = {name: [] for name in ops}
    for _ in range(rounds):
        for name, op in ops.items():
            samples[name].append(await per_op_us(op, n))
    return {name: statistics.median(values) for name, values in samples.items()}


def manager_on(servers: list[str], pool: int) -> CacheManager:
    return CacheManager(
        memory=MemoryBackend(100_000, 256 << 20),
        shared=MemcachedBackend(
            servers, pool_min=pool, pool_max=pool, connect_timeout=0.05, timeout=0.05
        )
        if servers
        else None,
        breaker=CircuitBreaker(5, 5.0),
        key_prefix="bench",
    )


async def bench_memcached(n: int, rounds: int) -> None:
    print("\n## 1. get/set: manager vs raw pymemcache (real memcached on loopback)")
    pool = 20
    with memcached_process() as mc:
        manager = manager_on([mc.address], pool)
        await manager.start()
        raw = PooledClient(("127.0.0.1", mc.port), max_pool_size=pool, no_delay=True)
        executor = ThreadPoolExecutor(pool)
        loop = asyncio.get_running_loop()
        value = {"symbol": "BTCUSDT", "price": 65000.5, "change_pct_24h": 1.25}
        payload = orjson.dumps(value)
        await manager.set("market", "k", value)
        raw.set("raw:k", payload, 300, noreply=False)

        async def manager_get(_: int) -> Any:
            return await manager.get("market", "k")

        async def raw_async_get(_: int) -> Any:
            return orjson.loads(await loop.run_in_executor(executor, raw.get, "raw:k"))

        async def raw_sync_get(_: int) -> Any:
            return orjson.loads(raw.get("raw:k"))

        async def manager_set(i: int) -> Any:
            return await manager.set("market", f"k{i % 100}", value)

        async def raw_async_set(i: int) -> Any:
            data = orjson.dumps(value)
            return await loop.run_in_executor(
                executor, raw.set, f"raw:k{i % 100}", data, 300, False
            )

        async def raw_sync_set(i: int) -> Any:
            return raw.set(f"raw:k{i % 100}", orjson.dumps(value), 300, noreply=False)

        gets = await interleave(
            {"manager": manager_get, "raw+executor": raw_async_get, "raw blocking": raw_sync_get},
            n,
            rounds,
        )
        sets = await interleave(
            {"manager": manager_set, "raw+executor": raw_async_set, "raw blocking": raw_sync_set},
            n,
            rounds,
        )
        for label, result in (("get", gets), ("set", sets)):
            print(
                f"{label}: manager {result['manager']:.1f} us, raw+executor "
                f"{result['raw+executor']:.1f} us, raw blocking {result['raw blocking']:.1f} us"
                f" -> manager / raw+executor = {result['manager'] / result['raw+executor']:.2f}x"
                f" (target <= 1.5x), manager / raw blocking = "
                f"{result['manager'] / result['raw blocking']:.2f}x"
            )
        executor.shutdown()
        raw.close()
        await manager.close()


async def bench_memory(n: int, rounds: int) -> None:
    print("\n## 2. memory-backend hit: manager vs cachetools.TTLCache")
    manager = manager_on([], 0)
    await manager.start()
    value = {"symbol": "BTCUSDT", "price": 65000.5, "change_pct_24h": 1.25}
    await manager.set("market", "k", value)
    ttl_cache: cachetools.TTLCache[str, Any] = cachetools.TTLCache(maxsize=100_000, ttl=300)
    ttl_cache["market:k"] = value
    ttl_json: cachetools.TTLCache[str, bytes] = cachetools.TTLCache(maxsize=100_000, ttl=300)
    ttl_json["market:k"] = orjson.dumps(value)

    async def manager_hit(_: int) -> Any:
        return await manager.get("market", "k")

    async def ttl_hit(_: int) -> Any:
        return ttl_cache.get("market:k")

    async def ttl_json_hit(_: int) -> Any:
        return orjson.loads(ttl_json["market:k"])

    result = await interleave(
        {"manager": manager_hit, "TTLCache": ttl_hit, "TTLCache+JSON": ttl_json_hit}, n, rounds
    )
    print(
        f"hit: manager {result['manager']:.2f} us, TTLCache (object) {result['TTLCache']:.2f} us,"
        f" TTLCache storing JSON {result['TTLCache+JSON']:.2f} us -> manager / TTLCache = "
        f"{result['manager'] / result['TTLCache']:.2f}x, manager / TTLCache+JSON = "
        f"{result['manager'] / result['TTLCache+JSON']:.2f}x"
    )
    await manager.close()


DASHBOARD = (
    "/api/market/movers",
    "/api/dashboard/overview",
    "/api/market/tickers/BTCUSDT",
    "/api/market/tickers/ETHUSDT",
    "/api/analysis/regime?symbol=BTCUSDT&window=100",
)


async def dashboard_load(
    client: httpx.AsyncClient, dashboards: int, seconds: float, poll: float
) -> int:
    """`dashboards` clients polling every panel each `poll` seconds for `seconds`."""
    deadline = time.monotonic() + seconds
    sent = 0

    async def one() -> None:
        nonlocal sent
        while time.monotonic() < deadline:
            for path in DASHBOARD:
                response = await client.get(path)
                assert response.status_code == 200, response.text
                sent += 1
            await asyncio.sleep(poll)

    await asyncio.gather(*(one() for _ in range(dashboards)))
    return sent


class NoCache(CacheManager):
    """The service without a cache: every lookup calls its loader (JSON round trip kept, so
    callers see the same shapes)."""

    async def get_or_set(
        self,
        namespace: str,
        key: str,
        loader: Callable[[], Awaitable[Any]],
        ttl: int | None = None,
    ) -> Any:
        return orjson.loads(orjson.dumps(await loader()))


async def bench_upstream(seconds: float) -> None:
    print("\n## 3. upstream calls for the same dashboard load, cache on vs off")
    results = {}
    for mode in ("on", "off"):
        settings = Settings(upstream_latency_ms=2, upstream_jitter_ms=0, gc_freeze=False)
        async with running_app(create_app(settings, telemetry=None)) as (client, services):
            if mode == "off":
                services.market.cache = NoCache(memory=MemoryBackend(10, 1 << 20))
            requests = await dashboard_load(client, dashboards=20, seconds=seconds, poll=0.5)
            results[mode] = (requests, services.upstream.calls)
    (req_on, calls_on), (req_off, calls_off) = results["on"], results["off"]
    per_on, per_off = calls_on / req_on, calls_off / req_off
    print(
        f"cache on: {req_on} requests -> {calls_on} upstream calls; cache off: {req_off} requests "
        f"-> {calls_off} upstream calls; per request {per_on:.4f} vs {per_off:.4f} -> "
        f"{(1 - per_on / per_off) * 100:.1f} % fewer (target >= 95 %)"
    )


async def bench_hung_memcached(seconds: float) -> None:
    print("\n## 4. event-loop lag with a memcached that accepts and never answers")
    with HungServer() as hung:
        settings = Settings(
            memcached_servers=[hung.address],
            upstream_latency_ms=2,
            upstream_jitter_ms=0,
            cache_breaker_cooldown=0.5,
        )
        async with running_app(create_app(settings, telemetry=None)) as (client, _):
            latencies: list[float] = []
            deadline = time.monotonic() + seconds

            async def worker() -> None:
                while time.monotonic() < deadline:
                    start = time.perf_counter()
                    response = await client.get("/api/market/movers")
                    assert response.status_code == 200
                    latencies.append(time.perf_counter() - start)
                    # In-process requests served from memory never suspend; a real client's next
                    # request is a new event, so let the loop run between them (as a server does).
                    await asyncio.sleep(0)

            async with LoopLagProbe() as probe:
                await asyncio.gather(*(worker() for _ in range(10)))
    latencies.sort()
    p50 = latencies[len(latencies) // 2]
    print(
        f"{len(latencies)} requests, all 200; latency p50 {p50 * 1e3:.1f}"
        f" ms, max {latencies[-1] * 1e3:.1f} ms; event-loop lag max {probe.max_lag * 1e3:.1f} ms"
        " (bound: 50 ms)"
    )


async def main(quick: bool) -> None:
    n, rounds = (300, 3) if quick else (2000, 7)
    await bench_memcached(n, rounds)
    await bench_memory(n * 5, rounds)
    await bench_upstream(3.0 if quick else 20.0)
    await bench_hung_memcached(2.0 if quick else 10.0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a few seconds, to check it runs")
    asyncio.run(main(parser.parse_args().quick))
