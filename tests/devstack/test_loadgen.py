from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from devstack.loadgen import LoadConfig, LoadGenerator, LoadStats, main, run_scenario
from devstack.scenarios import SCENARIOS, FaultInjectionDisabled, FaultsClient
from telemetry.thresholds import THRESHOLDS
from tests.app.ws.live import LiveServer, until
from tests.conftest import make_settings


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000",
        "http://localhost:8000/",
        "https://127.0.0.2",
        "http://[::1]:8000",
    ],
)
def test_loopback_targets_are_accepted(url: str) -> None:
    assert LoadConfig(url=url).url == url.rstrip("/")


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.1:8000", "http://example.com", "ftp://127.0.0.1", "127.0.0.1:8000", "http://"],
)
def test_anything_but_loopback_is_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"loopback|http"):
        LoadConfig(url=url)


@pytest.mark.parametrize(
    "options",
    [
        {"rate": -1},
        {"rate": 2001},
        {"duration": 0},
        {"duration": 86401},
        {"websockets": 1001},
        {"websockets": 2, "topics": ()},
        {"max_in_flight": 0},
        {"max_requests": -1},
        {"mix": "everything"},
    ],
)
def test_bounds_are_enforced(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - each case has its own message
        LoadConfig(**options)


def test_ws_url_follows_the_http_url() -> None:
    assert LoadConfig(url="http://127.0.0.1:81").ws_url == "ws://127.0.0.1:81/ws/dashboard"
    assert LoadConfig(url="https://127.0.0.1").ws_url == "wss://127.0.0.1/ws/dashboard"


def test_p95_and_progress_line() -> None:
    stats = LoadStats()
    assert stats.p95() is None
    assert "p95 -" in stats.line("steady", 0)
    stats.latencies.extend(i / 1000 for i in range(1, 101))
    stats.sent, stats.ok, stats.errors, stats.ws_open = 100, 98, 2, 3
    assert stats.p95() == 0.096
    line = stats.line("cache-miss", 5)
    assert line.startswith("[cache-miss]")
    assert "sent 100  ok 98  errors 2  p95 96ms  sockets 3/5" in line
    assert "\n" not in line


def test_every_alert_but_down_has_a_scenario() -> None:
    provoked = {s.alert for s in SCENARIOS.values() if s.alert is not None}
    assert provoked == {t.alert for t in THRESHOLDS} - {"MarketApiDown"}


@pytest.fixture
def live() -> Iterator[LiveServer]:
    settings = make_settings(gc_freeze=False, enable_fault_injection=True, ws_feed_interval=0.2)
    with LiveServer(settings) as server:
        yield server


@pytest.mark.server
async def test_traffic_follows_the_schedule_and_sockets_are_held(live: LiveServer) -> None:
    generator = LoadGenerator(
        LoadConfig(url=live.http, rate=40, duration=30, websockets=3, topics=("market.movers",))
    )
    stats = generator.stats

    async def sockets_open() -> bool:
        return stats.ws_open == 3

    async def updates_received() -> bool:
        return stats.ws_messages > 0

    async def server_sockets(count: int) -> bool:
        return await live.call(lambda: live.manager.stats.active_connections == count)

    started = time.monotonic()
    async with generator:
        await until(sockets_open)
        await until(lambda: server_sockets(3))
        await until(updates_received)
        await asyncio.sleep(1.0)
    elapsed = time.monotonic() - started
    assert stats.sent > 0
    assert stats.ok == stats.sent
    assert stats.errors == 0
    assert len(stats.latencies) == stats.sent
    # The schedule is a ceiling the generator never bursts past (a slow machine stays under it).
    assert stats.sent <= 40 * elapsed + 2
    assert stats.ws_open == 0
    await until(lambda: server_sockets(0))


@pytest.mark.server
async def test_request_budget_and_duration_bound_the_run(live: LiveServer) -> None:
    budget = await LoadGenerator(
        LoadConfig(url=live.http, rate=200, duration=30, max_requests=25, mix="movers")
    ).run()
    assert budget.sent == budget.ok == 25
    timed = await LoadGenerator(LoadConfig(url=live.http, rate=20, duration=0.5)).run()
    # 0.5 s at 20 a second: the first request goes at once, then one every 50 ms.
    assert 1 <= timed.sent <= 11


@pytest.mark.server
async def test_scenario_sets_its_faults_and_clears_them(live: LiveServer) -> None:
    seen: list[bool] = []
    generator = LoadGenerator(LoadConfig(url=live.http, rate=10, duration=1.0))

    async def watch() -> None:
        while True:
            seen.append(live.services.cache.force_miss)
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch())
    out = io.StringIO()
    try:
        stats = await run_scenario(SCENARIOS["cache-miss"], generator, out=out)
    finally:
        watcher.cancel()
    assert stats.sent > 0
    assert True in seen, "the fault was on while the traffic ran"
    assert live.services.cache.force_miss is False, "and cleared at the end"
    assert "[cache-miss]" in out.getvalue()


@pytest.mark.server
async def test_keep_faults_leaves_them_set(live: LiveServer) -> None:
    generator = LoadGenerator(LoadConfig(url=live.http, rate=5, duration=0.3))
    await run_scenario(SCENARIOS["slow-upstream"], generator, keep_faults=True, out=io.StringIO())
    injector = live.services.faults
    assert injector is not None
    assert injector.settings.upstream_latency_ms == 300


@pytest.mark.server
async def test_without_fault_injection_only_scenarios_that_need_none_run() -> None:
    with LiveServer(make_settings(gc_freeze=False)) as live:
        steady = LoadGenerator(LoadConfig(url=live.http, rate=10, duration=0.3))
        assert (await run_scenario(SCENARIOS["steady"], steady, out=io.StringIO())).sent > 0
        failing = LoadGenerator(LoadConfig(url=live.http, rate=10, duration=0.3))
        with pytest.raises(FaultInjectionDisabled):
            await run_scenario(SCENARIOS["memory-high"], failing, out=io.StringIO())
        assert failing.stats.sent == 0


@pytest.mark.server
async def test_faults_client_round_trip(live: LiveServer) -> None:
    async with httpx.AsyncClient(base_url=live.http) as http:
        faults = FaultsClient(http)
        state = await faults.set({"ballast_mb": 2})
        assert state["ballast_mb"] == 2
        assert (await faults.get())["faults"]["ballast_mb"] == 2
        assert (await faults.clear())["ballast_mb"] == 0
        with pytest.raises(httpx.HTTPStatusError):
            await faults.set({"ballast_mb": -1})


def test_cli_lists_scenarios_and_refuses_remote_targets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--list"]) == 0
    listed = capsys.readouterr().out
    for name in SCENARIOS:
        assert name in listed
    with pytest.raises(SystemExit) as exited:
        main(["--url", "http://192.0.2.1:8000"])
    assert exited.value.code == 2
    assert "loopback" in capsys.readouterr().err
