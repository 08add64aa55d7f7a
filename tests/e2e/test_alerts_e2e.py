"""Every alert, end to end, on real servers: provoked, delivered firing, cleared, delivered
resolved.

One stack for the module (`devstack/stack.py`, the launcher `market-stack` uses): memcached,
the app with fault injection on, Prometheus 2.42 scraping and evaluating every second with a copy
of the committed rules whose `for:` durations are cut to `FOR_SECONDS` (nothing else differs: the
5m rate windows and the 1h trend window stay), and Alertmanager with the committed configuration
posting to the app's webhook. Each notification must reach both `GET /api/alerts/recent` and a
dashboard socket subscribed to `alerts`, with the labels the rule gives it.

The scenarios run in an order that keeps them from masking one another:

1. the leak first, while the memory history is short and flat (a later ballast or a burst of
   sockets would tilt the 1h trend upwards), and before the memory alert (which inhibits it);
2. sockets, which touch no HTTP window;
3. latency, then the cache hit rate: each fault is kept short and followed by fast, cacheable
   traffic, so the 5m windows the alerts judge recover within seconds instead of five minutes;
4. the app stopped, 5. the ballast last (it tilts the memory trend, and the leak alert with it).

`MarketApiDown` is provoked by stopping the app with SIGSTOP: Prometheus cannot scrape it, yet its
port stays open, so Alertmanager's notification waits in the listen backlog and is delivered when
the app resumes. A killed app could not receive the notification about its own death at all: once
it is back, the alert resolves before Alertmanager retries, and the firing notification is lost.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
import yaml

from devstack.alertmanager import ALERTMANAGER_CONFIG
from devstack.loadgen import LoadConfig, LoadGenerator, Mix
from devstack.scenarios import FaultsClient
from devstack.stack import Stack, StackConfig
from telemetry.thresholds import (
    BY_ALERT,
    CACHE_HIT_RATE_LOW,
    HIGH_LATENCY,
    JOB,
    MEMORY_HIGH,
    MEMORY_LEAK_SUSPECTED,
    SERVICE_DOWN,
    TOO_MANY_WEBSOCKETS,
    WEBSOCKETS_MAX,
)
from tests.support.alert_feed import AlertFeed

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.memcached,
    pytest.mark.prometheus,
    pytest.mark.alertmanager,
    pytest.mark.server,
    pytest.mark.asyncio(loop_scope="module"),
    pytest.mark.timeout(240),
]

FOR_SECONDS = 10
FIRING_WITHIN = 120.0
RESOLVED_WITHIN = 150.0
"""Liveness bounds. Alertmanager sends a resolved notification at the group's next
`group_interval` tick (30s), so resolution takes longer than firing."""
LOAD_BOUND = 300.0
"""No load generator here runs longer, whatever happens."""


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m|h)", duration)
    assert match, duration
    scale = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match.group(2)]
    return int(match.group(1)) * scale


GROUP_WAIT = _seconds(yaml.safe_load(ALERTMANAGER_CONFIG.read_text())["route"]["group_wait"])


@dataclass
class E2E:
    stack: Stack
    app: httpx.AsyncClient
    prometheus: httpx.AsyncClient
    alertmanager: httpx.AsyncClient
    feed: AlertFeed
    faults: FaultsClient

    @property
    def instance(self) -> str:
        return f"127.0.0.1:{self.stack.config.app_port}"

    def load(self, rate: float, *, websockets: int = 0, mix: Mix = "movers") -> LoadGenerator:
        return LoadGenerator(
            LoadConfig(
                url=self.stack.app_url,
                rate=rate,
                websockets=websockets,
                mix=mix,
                duration=LOAD_BOUND,
            )
        )

    def labels(self, alert: str, **extra: str) -> dict[str, str]:
        """Every label a notification of `alert` must carry: the rule's and the series'."""
        return {"alertname": alert, "severity": str(BY_ALERT[alert].severity), "job": JOB, **extra}

    # ---------------------------------------------------------------- observation
    async def recent(self) -> list[dict[str, Any]]:
        response = await self.app.get("/api/alerts/recent", params={"limit": 200})
        response.raise_for_status()
        notifications: list[dict[str, Any]] = response.json()["notifications"]
        return notifications

    async def last_id(self) -> int:
        notifications = await self.recent()
        return int(notifications[0]["id"]) if notifications else 0

    async def prometheus_states(self, alert: str) -> list[str]:
        """`pending`/`firing` for each active instance of `alert` in Prometheus."""
        response = await self.prometheus.get(
            "/api/v1/query", params={"query": f'ALERTS{{alertname="{alert}"}}'}
        )
        response.raise_for_status()
        return [r["metric"]["alertstate"] for r in response.json()["data"]["result"]]

    async def diagnostics(self, alert: str) -> str:
        seen = [
            (n["id"], a["labels"].get("alertname"), a["status"])
            for n in await self.recent()
            for a in n["alerts"]
        ]
        states = await self.prometheus_states(alert)
        return (
            f"Prometheus says {alert} is {states or 'inactive'}; notifications (id, alert, "
            f"status), newest first: {seen[:20]}; logs in {self.stack.workdir}"
        )

    async def expect(
        self, alert: str, status: str, since: int, labels: dict[str, str], within: float
    ) -> dict[str, Any]:
        """The first notification after `since` carrying `alert` with `status`; asserts the
        socket got the same document and the alert has exactly `labels`."""
        deadline = time.monotonic() + within
        found: tuple[dict[str, Any], dict[str, Any]] | None = None
        while found is None:
            for notification in reversed(await self.recent()):
                if notification["id"] <= since:
                    continue
                for entry in notification["alerts"]:
                    if entry["labels"].get("alertname") == alert and entry["status"] == status:
                        found = (notification, entry)
                        break
                if found is not None:
                    break
            if found is None:
                if time.monotonic() > deadline:
                    raise AssertionError(
                        f"no {status} notification of {alert} within {within:.0f}s. "
                        + await self.diagnostics(alert)
                    )
                await asyncio.sleep(0.5)
        notification, entry = found
        pushed = None
        for _ in range(100):
            pushed = self.feed.by_id(notification["id"])
            if pushed is not None:
                break
            await asyncio.sleep(0.1)
        assert pushed == notification, "the socket must get the very notification stored"
        assert entry["labels"] == labels
        assert entry["annotations"]["runbook_url"] == BY_ALERT[alert].runbook_url
        return entry

    async def quiet(self, alert: str, within: float = RESOLVED_WITHIN) -> None:
        """Wait until `alert` is inactive in Prometheus and its last notification (if any) said
        resolved. Alertmanager would not notify a new firing of an alert whose resolution it has
        not yet sent: it would look like the firing it already reported."""
        deadline = time.monotonic() + within
        while True:
            last = None
            for notification in await self.recent():
                for entry in notification["alerts"]:
                    if entry["labels"].get("alertname") == alert:
                        last = entry["status"]
                        break
                if last is not None:
                    break
            if last in (None, "resolved") and not await self.prometheus_states(alert):
                return
            assert time.monotonic() < deadline, f"{alert} never went quiet. " + (
                await self.diagnostics(alert)
            )
            await asyncio.sleep(1.0)

    async def inactive(self, alert: str, within: float = RESOLVED_WITHIN) -> None:
        """Wait until Prometheus no longer holds `alert` pending or firing."""
        deadline = time.monotonic() + within
        while await self.prometheus_states(alert):
            assert time.monotonic() < deadline, f"{alert} never cleared. " + (
                await self.diagnostics(alert)
            )
            await asyncio.sleep(0.5)

    async def alertmanager_has(self, alert: str) -> bool:
        response = await self.alertmanager.get(
            "/api/v2/alerts", params={"filter": f'alertname="{alert}"', "active": "true"}
        )
        response.raise_for_status()
        return any(a["status"]["state"] == "active" for a in response.json())

    async def sockets_open(self, generator: LoadGenerator, count: int, within: float) -> None:
        deadline = time.monotonic() + within
        while generator.stats.ws_open < count:
            assert time.monotonic() < deadline, f"only {generator.stats.ws_open} sockets open"
            await asyncio.sleep(0.2)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def e2e(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[E2E]:
    workdir: Path = tmp_path_factory.mktemp("stack")
    config = StackConfig.on_free_ports(
        scrape_interval="1s",
        evaluation_interval="1s",
        for_seconds=FOR_SECONDS,
        workdir=workdir,
        app_env={"LOG_LEVEL": "warning"},
    )
    with Stack(config) as stack:
        async with (
            httpx.AsyncClient(base_url=stack.app_url, timeout=10.0) as app,
            httpx.AsyncClient(base_url=stack.prometheus_url, timeout=10.0) as prometheus,
            httpx.AsyncClient(base_url=stack.alertmanager_url, timeout=10.0) as alertmanager,
        ):
            feed = await AlertFeed(stack.ws_url).start()
            try:
                yield E2E(stack, app, prometheus, alertmanager, feed, FaultsClient(app))
            finally:
                await feed.close()


async def test_memory_leak_fires_then_resolves(e2e: E2E) -> None:
    alert = MEMORY_LEAK_SUSPECTED.alert
    labels = e2e.labels(alert, instance=e2e.instance)
    since = await e2e.last_id()
    try:
        # A first step, then steady growth: the fitted 1h trend points far past the threshold.
        await e2e.faults.set({"ballast_mb": 24})
        await asyncio.sleep(8)
        await e2e.faults.set({"ballast_mb": 24, "leak_mb_per_minute": 60, "leak_max_mb": 64})
        await e2e.expect(alert, "firing", since, labels, FIRING_WITHIN)
    finally:
        # Everything released: memory falls below where the trend started, so it turns down.
        await e2e.faults.clear()
    await e2e.expect(alert, "resolved", since, labels, RESOLVED_WITHIN)


async def test_too_many_websockets_fires_then_resolves(e2e: E2E) -> None:
    alert = TOO_MANY_WEBSOCKETS.alert
    labels = e2e.labels(alert, instance=e2e.instance)
    await e2e.quiet(alert)
    since = await e2e.last_id()
    sockets = WEBSOCKETS_MAX + 10
    async with e2e.load(0, websockets=sockets) as crowd:
        await e2e.sockets_open(crowd, sockets, within=30)
        await e2e.expect(alert, "firing", since, labels, FIRING_WITHIN)
    await e2e.expect(alert, "resolved", since, labels, RESOLVED_WITHIN)


async def test_high_latency_fires_then_resolves(e2e: E2E) -> None:
    alert = HIGH_LATENCY.alert
    labels = e2e.labels(alert, quantile="0.95")
    await e2e.quiet(alert)
    since = await e2e.last_id()
    try:
        # Requests that arrive while the cached board is refreshed wait for the slow upstream.
        await e2e.faults.set({"upstream_latency_ms": 300})
        async with e2e.load(10):
            await e2e.expect(alert, "firing", since, labels, FIRING_WITHIN)
    finally:
        await e2e.faults.clear()
    # Fast traffic dilutes the slow requests still in the 5m window below 5 %; no more than
    # needed, or the next scenario's window would be full of it.
    async with e2e.load(50):
        await e2e.inactive(alert)
    await e2e.expect(alert, "resolved", since, labels, RESOLVED_WITHIN)


async def test_cache_hit_rate_low_fires_then_resolves(e2e: E2E) -> None:
    alert = CACHE_HIT_RATE_LOW.alert
    labels = e2e.labels(alert)
    await e2e.quiet(alert)
    since = await e2e.last_id()
    try:
        await e2e.faults.set({"force_cache_miss": True})
        async with e2e.load(8):
            await e2e.expect(alert, "firing", since, labels, FIRING_WITHIN)
    finally:
        await e2e.faults.clear()
    # Hits, many of them: the misses still in the 5m window fall under 20 % of the lookups.
    async with e2e.load(50):
        await e2e.inactive(alert)
    await e2e.expect(alert, "resolved", since, labels, RESOLVED_WITHIN)


async def test_app_down_fires_then_resolves(e2e: E2E) -> None:
    alert = SERVICE_DOWN.alert
    labels = e2e.labels(alert, instance=e2e.instance)
    await e2e.quiet(alert)
    since = await e2e.last_id()
    e2e.stack.pause_app()
    try:
        deadline = time.monotonic() + FIRING_WITHIN
        while not await e2e.alertmanager_has(alert):
            assert time.monotonic() < deadline, f"{alert} never reached Alertmanager"
            await asyncio.sleep(0.5)
        # Alertmanager waits group_wait before its first notification, which then waits for the
        # app in its listen backlog; resume once it is surely sent.
        await asyncio.sleep(GROUP_WAIT + 5)
    finally:
        e2e.stack.resume_app()
    await e2e.expect(alert, "firing", since, labels, FIRING_WITHIN)
    await e2e.expect(alert, "resolved", since, labels, RESOLVED_WITHIN)
    assert e2e.feed.connections == 1, "the dashboard socket survived the stop"


async def test_memory_high_fires_then_resolves(e2e: E2E) -> None:
    alert = MEMORY_HIGH.alert
    labels = e2e.labels(alert, instance=e2e.instance)
    await e2e.quiet(alert)
    since = await e2e.last_id()
    try:
        await e2e.faults.set({"ballast_mb": 128})
        await e2e.expect(alert, "firing", since, labels, FIRING_WITHIN)
    finally:
        await e2e.faults.clear()
    await e2e.expect(alert, "resolved", since, labels, RESOLVED_WITHIN)
