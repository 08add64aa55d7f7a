"""`market-stack --replicas N`: nginx in front of real replicas, and what clients see when a
replica or nginx itself dies (real processes throughout: nginx, market-api, memcached x2,
redis-server, the exchange simulator, Prometheus, Alertmanager).

Run with `-s` to see the measured figures (errors, detection time, recovery time, sockets)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field

import httpx
import psutil
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from devstack.nginx import (
    FAIL_TIMEOUT_SECONDS,
    HTTP_READ_TIMEOUT_SECONDS,
    UPSTREAM_KEEPALIVE_CONNECTIONS,
    read_access_log,
)
from devstack.stack import Stack, StackConfig, describe
from tests.app.ws.live import client, subscribe, until, wait_closed

pytestmark = [
    pytest.mark.nginx,
    pytest.mark.server,
    pytest.mark.memcached,
    pytest.mark.redis,
    pytest.mark.prometheus,
    pytest.mark.alertmanager,
]

REPLICAS = 3
ROUTE = "/api/market/movers"
SUMMARY = "/api/monitoring/performance/summary"


@pytest.fixture
def fleet() -> Iterator[Stack]:
    config = StackConfig.on_free_ports(
        replicas=REPLICAS, scrape_interval="1s", app_env={"LOG_LEVEL": "warning"}
    )
    with Stack(config) as running:
        yield running


def replica_address(stack: Stack, index: int) -> str:
    return f"127.0.0.1:{stack.replica_ports[index]}"


def active_sockets(url: str) -> int:
    count: int = httpx.get(url + SUMMARY, timeout=5).json()["websocket"]["active_connections"]
    return count


def established_to(port: int) -> int:
    """TCP connections established to `port` on loopback (`ss`), whoever opened them."""
    out = subprocess.run(
        ["ss", "-Htn", "state", "established", f"( dport = :{port} )"],
        capture_output=True,
        text=True,
        check=True,
        timeout=10,
    ).stdout
    return len(out.splitlines())


def test_fleet_wires_nginx_replicas_and_backends(fleet: Stack) -> None:
    with httpx.Client(base_url=fleet.app_url, timeout=5) as service:
        for _ in range(3 * REPLICAS):
            health = service.get("/api/monitoring/performance/health")
            assert health.status_code == 200
            memcached = health.json()["components"]["cache"]["memcached"]
            assert memcached["servers"] == fleet.memcached_addresses
            assert len(fleet.memcached_addresses) == 2
    assert fleet.nginx is not None
    served = {
        upstream
        for record in read_access_log(fleet.workdir / "nginx" / "logs" / "access.log")
        for upstream in record.upstreams
    }
    assert served == {replica_address(fleet, i) for i in range(REPLICAS)}, "round robin"

    alertmanager = httpx.get(f"{fleet.alertmanager_url}/api/v2/status", timeout=5).json()
    assert f"{fleet.app_url}/api/alerts/webhook" in alertmanager["config"]["original"]

    deadline = time.monotonic() + 30
    while True:
        answer = httpx.get(f"{fleet.prometheus_url}/api/v1/targets", timeout=5).json()
        targets = answer["data"]["activeTargets"]
        if len(targets) == REPLICAS and all(t["health"] == "up" for t in targets):
            break
        assert time.monotonic() < deadline, targets
        time.sleep(0.2)
    instances = sorted(t["labels"]["instance"] for t in targets)
    assert instances == sorted(replica_address(fleet, i) for i in range(REPLICAS))
    assert {t["labels"]["job"] for t in targets} == {"market-api"}

    printed = io.StringIO()
    describe(fleet, printed)
    text = printed.getvalue()
    assert f"service       {fleet.app_url}  (nginx" in text
    for url in [*fleet.replica_urls, fleet.prometheus_url, fleet.alertmanager_url]:
        assert url in text
    assert ", ".join(fleet.memcached_addresses) in text
    assert str(fleet.redis_url) in text


def test_fleet_config_is_checked() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        StackConfig(replicas=0)
    with pytest.raises(ValueError, match="one port per replica"):
        StackConfig(replicas=3, replica_ports=(1, 2))
    config = StackConfig.on_free_ports(replicas=2)
    ports = [
        config.app_port,
        *config.replica_ports,
        config.memcached_port,
        config.second_memcached_port,
        config.redis_port,
        config.exchange_port,
    ]
    assert len(set(ports)) == len(ports) == 7
    assert not StackConfig().fleet


# ---------------------------------------------------------------------- load while things die
@dataclass
class Outcomes:
    """What each request of a steady load got, stamped with the wall clock (nginx's $msec)."""

    ok: list[float] = field(default_factory=list)
    failed: list[tuple[float, str]] = field(default_factory=list)
    slow: list[float] = field(default_factory=list)
    """Durations of the answers that took over a second."""

    def failed_between(self, start: float, end: float) -> int:
        return sum(1 for at, _ in self.failed if start <= at < end)


async def steady_load(url: str, outcomes: Outcomes, stop: asyncio.Event, workers: int) -> None:
    limits = httpx.Limits(max_connections=workers, max_keepalive_connections=workers)
    async with httpx.AsyncClient(base_url=url, timeout=10, limits=limits) as http:

        async def worker() -> None:
            while not stop.is_set():
                started = time.monotonic()
                try:
                    answer = await http.get(ROUTE, timeout=30)
                except httpx.HTTPError as exc:
                    outcomes.failed.append((time.time(), type(exc).__name__))
                    await asyncio.sleep(0.01)
                    continue
                if answer.status_code >= 500:
                    outcomes.failed.append((time.time(), str(answer.status_code)))
                else:
                    outcomes.ok.append(time.time())
                    if (took := time.monotonic() - started) > 1:
                        outcomes.slow.append(took)
                await asyncio.sleep(0.005)

        await asyncio.gather(*(worker() for _ in range(workers)))


@contextlib.asynccontextmanager
async def subscribers(url: str, count: int) -> AsyncIterator[list[ClientConnection]]:
    async with contextlib.AsyncExitStack() as stack:
        sockets = [await stack.enter_async_context(client(url)) for _ in range(count)]
        for ws in sockets:
            await subscribe(ws, "market.movers")
        yield sockets


async def reconnect(url: str, attempts: int = 40) -> ClientConnection:
    """What docs/websocket.md#reconnecting asks of a client: retry with growing, jittered
    delays, then subscribe again."""
    delay = 0.05
    for _ in range(attempts):
        try:
            ws = await connect(url, compression=None, open_timeout=5)
            await subscribe(ws, "market.movers")
            return ws
        except (OSError, InvalidHandshake, ConnectionClosed, TimeoutError):
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
    raise AssertionError(f"no WebSocket through {url} after {attempts} attempts")


async def test_a_killed_replica_costs_get_clients_nothing(fleet: Stack) -> None:
    victim = 1
    victim_port = fleet.replica_ports[victim]
    live = [url for i, url in enumerate(fleet.replica_urls) if i != victim]
    outcomes, stop = Outcomes(), asyncio.Event()
    async with subscribers(fleet.ws_url, 6) as sockets:
        on_victim = await asyncio.to_thread(active_sockets, fleet.replica_urls[victim])
        assert on_victim >= 1, "round robin put sockets on every replica"
        load = asyncio.create_task(steady_load(fleet.app_url, outcomes, stop, workers=8))
        await asyncio.sleep(2.0)
        before_kill = len(outcomes.ok)
        killed_at = time.time()
        await asyncio.to_thread(fleet.kill_replica, victim)

        # Its WebSocket clients lose their socket (no close frame: the process is gone) ...
        async def victims_dropped() -> bool:
            return sum(ws.close_code is not None for ws in sockets) >= on_victim

        await until(victims_dropped, 5)
        await asyncio.sleep(0.5)
        dropped = [ws for ws in sockets if ws.close_code is not None]
        assert len(dropped) == on_victim
        assert {ws.close_code for ws in dropped} == {1006}
        # ... and, reconnecting through nginx, land on a live replica.
        again = [await reconnect(fleet.ws_url) for _ in dropped]
        try:
            await asyncio.sleep(3.0)
            stop.set()
            await load
            on_live = [await asyncio.to_thread(active_sockets, url) for url in live]
            assert sum(on_live) == len(sockets), on_live
        finally:
            for ws in again:
                await ws.close()

    log = read_access_log(fleet.workdir / "nginx" / "logs" / "access.log")
    dead = f"127.0.0.1:{victim_port}"
    tried_dead = [r.time - killed_at for r in log if r.time >= killed_at and dead in r.upstreams]
    # Tried again once per fail_timeout: the first burst is how long it took nginx to notice.
    noticed = max((t for t in tried_dead if t < FAIL_TIMEOUT_SECONDS), default=0.0)
    errors = len(outcomes.failed)
    after = len(outcomes.ok) - before_kill
    noticed_at = killed_at + noticed
    phases = (
        outcomes.failed_between(0, killed_at),
        outcomes.failed_between(killed_at, noticed_at),
        outcomes.failed_between(noticed_at, float("inf")),
    )
    print(
        f"\nreplica SIGKILL under load: {before_kill} answers before, {after} after; "
        f"client errors before the kill / until nginx noticed / after: {phases} "
        f"{sorted({e for _, e in outcomes.failed})}; "
        f"nginx tried the dead replica {len(tried_dead)} times, last of the first burst "
        f"{noticed * 1000:.1f} ms after the kill; {len(dropped)} WebSockets dropped and "
        f"reconnected to live replicas {on_live}"
    )
    assert after > 0
    assert errors <= 2, outcomes.failed
    assert noticed < 2.0
    assert all(r.status < 500 for r in log if r.time >= killed_at and ROUTE in r.request)
    assert established_to(victim_port) == 0
    # Keep-alive connections from nginx's one worker (the load has stopped) and the sockets.
    to_live = [established_to(int(url.rsplit(":", 1)[1])) for url in live]
    print(f"TCP connections to the live replicas after the load: {to_live} (ss)")
    assert all(n <= UPSTREAM_KEEPALIVE_CONNECTIONS + len(sockets) for n in to_live), to_live


async def test_a_hung_replica_costs_a_read_timeout_then_is_skipped(fleet: Stack) -> None:
    victim = 2
    hung = replica_address(fleet, victim)
    outcomes, stop = Outcomes(), asyncio.Event()
    load = asyncio.create_task(steady_load(fleet.app_url, outcomes, stop, workers=8))
    try:
        await asyncio.sleep(1.0)
        fleet.pause_replica(victim)
        paused_at = time.time()
        await asyncio.sleep(HTTP_READ_TIMEOUT_SECONDS + 3)
        fleet.resume_replica(victim)
        resumed_at = time.time()
        await asyncio.sleep(FAIL_TIMEOUT_SECONDS + 2)
    finally:
        fleet.resume_replica(victim)
        stop.set()
        await load
    log = read_access_log(fleet.workdir / "nginx" / "logs" / "access.log")
    retried = [r for r in log if paused_at <= r.time < resumed_at and r.upstreams[:1] == (hung,)]
    back = [r for r in log if r.time >= resumed_at and r.upstreams[-1:] == (hung,)]
    print(
        f"\nreplica SIGSTOP under load: {len(outcomes.ok)} answers, {len(outcomes.failed)} "
        f"errors; {len(retried)} requests sent to it while hung, each retried elsewhere; "
        f"{len(outcomes.slow)} answers over 1 s, "
        f"the slowest {max(outcomes.slow, default=0):.1f} s; "
        f"{len(back)} answered by it after SIGCONT"
    )
    assert outcomes.failed == []
    assert retried, "nginx sent requests to the hung replica"
    assert all(r.status == 200 for r in retried), retried
    assert len(outcomes.slow) <= 8 * 3, "only requests caught by the hang or a probe wait"
    assert max(outcomes.slow, default=0) < HTTP_READ_TIMEOUT_SECONDS + 5
    assert back, "the replica rejoins after fail_timeout"


async def test_nginx_killed_and_restarted_answers_again(fleet: Stack) -> None:
    assert fleet.nginx is not None
    assert fleet.nginx.proc is not None
    master = psutil.Process(fleet.nginx.proc.pid)
    rss_before = sum(p.memory_info().rss for p in (master, *master.children()))
    async with subscribers(fleet.ws_url, 3) as sockets:
        await asyncio.to_thread(fleet.kill_nginx)
        killed_at = time.monotonic()
        for ws in sockets:
            await wait_closed(ws, 5)
        assert {ws.close_code for ws in sockets} == {1006}
        with pytest.raises(httpx.ConnectError):
            await asyncio.to_thread(httpx.get, fleet.app_url + ROUTE, timeout=2)

        # Replicas drop the orphaned sockets on their own: nginx's side of each is gone.
        async def orphans_gone() -> bool:
            counts = [await asyncio.to_thread(active_sockets, u) for u in fleet.replica_urls]
            return sum(counts) == 0

        await until(orphans_gone, 15)

        restarted_at = time.monotonic()
        await asyncio.to_thread(fleet.start_nginx)
        ready = time.monotonic()
        again = [await reconnect(fleet.ws_url) for _ in sockets]
        reconnected = time.monotonic()
        try:
            answer = await asyncio.to_thread(httpx.get, fleet.app_url + ROUTE, timeout=5)
            assert answer.status_code == 200
        finally:
            for ws in again:
                await ws.close()
    print(
        f"\nnginx SIGKILL: down {restarted_at - killed_at:.2f} s (the test's choice), "
        f"restart to first answer {(ready - restarted_at) * 1000:.0f} ms, "
        f"3 WebSockets back {(reconnected - ready) * 1000:.0f} ms later; "
        f"nginx RSS (master + worker) {rss_before / 2**20:.1f} MiB"
    )
