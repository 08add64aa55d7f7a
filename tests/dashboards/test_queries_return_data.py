"""Every PromQL target of every panel of every dashboard returns data from a real stack.

One stack (`devstack.stack.Stack`: memcached, the app with fault injection on, Prometheus
scraping and evaluating every second, Alertmanager), driven by the load generator with both
request mixes and three kinds of sockets, while the states that only some panels show are
provoked one after another, each held just until Prometheus has seen it:

- upstream failing (`upstream_error_rate` 1 with every cache read missing): 5xx answers and
  upstream calls with an error outcome;
- memcached stopped, then started again: the breaker opens and reads fall back to memory;
- sockets that subscribe to more tickers at once than their queue holds (`WS_QUEUE_SIZE=2`,
  `WS_SLOW_CONSUMER_TIMEOUT` of a microsecond): updates dropped and slow-consumer closes (1013);
- a 128 MiB ballast with `for:` cut to 1 s: `MarketApiMemoryHigh` fires, so the firing-alerts
  table has a row. It is held until every query has run.

Then each target is run as the preview runs it (range query for time series, instant query at
the end for stats and tables; `$job` market-api, `$instance` All, `$__rate_interval` 1m, what a
dashboard on the committed 15 s scrape uses) and the test fails listing every target that
still returns no series with a number in it (NaN alone draws nothing) after a few more
scrapes. The table of series counts is printed and
written to `panel-series.txt` in the test's temporary directory.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from dashboards.preview_data import QueryWindow, fetch_dashboard
from dashboards.prometheus_api import PrometheusApi
from dashboards.queries import load_dashboards, prometheus_queries
from devstack.loadgen import LoadConfig, LoadGenerator
from devstack.scenarios import FaultsClient
from devstack.stack import Stack, StackConfig

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.memcached,
    pytest.mark.prometheus,
    pytest.mark.alertmanager,
    pytest.mark.server,
    pytest.mark.timeout(240),
]

RATE_INTERVAL = "1m"
SCRAPE_INTERVAL = 1.0
WARM_UP = 6.0
"""Seconds of plain traffic first: every route, namespace and socket counter gets scraped
at least a few times before any fault."""
SEEN_WITHIN = 45.0
"""Liveness bound for Prometheus to show each provoked state."""
DATA_WITHIN = 30.0
"""Liveness bound for every target to have data: a series first scraped a moment ago has one
sample, and `rate()` needs two, so the queries are run again until none is empty."""
LOAD_BOUND = 200.0
"""No load generator here runs longer, whatever happens."""
TICKERS_PER_SLOW_SOCKET = 6
APP_ENV = {
    "LOG_LEVEL": "warning",
    # A feed round publishes every subscribed ticker back to back: more tickers than the queue
    # holds drop updates, and dropping for a microsecond counts as a stuck client (1013).
    "WS_QUEUE_SIZE": "2",
    "WS_SLOW_CONSUMER_TIMEOUT": "0.000001",
}
EXCEPTIONS: dict[tuple[str, str], str] = {}
"""(dashboard uid, panel title) -> why that panel may stay empty here. Empty: none may."""


@dataclass(frozen=True, slots=True)
class Row:
    dashboard: str
    panel: str
    ref_id: str
    series: int
    with_values: int
    """Series with at least one number (not NaN): a quantile of a window without observations
    is a series of NaN, which Grafana draws as nothing."""
    expr: str
    error: str | None


async def _until(
    check: Callable[[], Awaitable[bool]], what: str, within: float = SEEN_WITHIN
) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"Prometheus never showed {what}"
        await asyncio.sleep(0.5)


def _has(prometheus: httpx.AsyncClient, expr: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        response = await prometheus.get("/api/v1/query", params={"query": expr})
        response.raise_for_status()
        return bool(response.json()["data"]["result"])

    return check


async def _symbols(app: httpx.AsyncClient) -> list[str]:
    response = await app.get("/api/market/movers", params={"limit": TICKERS_PER_SLOW_SOCKET})
    response.raise_for_status()
    body = response.json()
    return sorted({row["symbol"] for side in ("gainers", "losers") for row in body[side]})


def _load(stack: Stack, **options: object) -> LoadGenerator:
    return LoadGenerator(
        LoadConfig(url=stack.app_url, duration=LOAD_BOUND, **options)  # type: ignore[arg-type]
    )


async def provoke_every_state(stack: Stack) -> None:
    """Traffic on every route and socket kind, then each fault until Prometheus shows it; the
    ballast (and the memory alert) stays on for the queries."""
    async with (
        httpx.AsyncClient(base_url=stack.app_url, timeout=10.0) as app,
        httpx.AsyncClient(base_url=stack.prometheus_url, timeout=10.0) as prometheus,
    ):
        faults = FaultsClient(app)
        tickers = tuple(f"tickers.{s}" for s in (await _symbols(app))[:TICKERS_PER_SLOW_SOCKET])
        dashboard_mix = _load(
            stack,
            rate=25,
            mix="dashboard",
            websockets=3,
            topics=("market.movers", "market.overview", "alerts"),
            seed=1,
        )
        movers_mix = _load(stack, rate=10, mix="movers")
        slow_sockets = _load(stack, rate=0, websockets=2, topics=tickers)
        async with dashboard_mix, movers_mix, slow_sockets:
            await asyncio.sleep(WARM_UP)

            await faults.set({"upstream_error_rate": 1.0, "force_cache_miss": True})
            await _until(
                _has(prometheus, 'upstream_requests_total{outcome!="ok"} > 0'),
                "failed upstream calls",
            )
            await _until(
                _has(
                    prometheus,
                    'http_server_request_duration_seconds_count{http_response_status_code=~"5.."}',
                ),
                "5xx answers",
            )
            await faults.clear()

            assert stack.memcached is not None
            await asyncio.to_thread(stack.memcached.stop)
            try:
                await _until(_has(prometheus, "cache_fallbacks_total > 0"), "cache fallbacks")
            finally:
                await asyncio.to_thread(stack.memcached.start)

            await _until(
                _has(prometheus, "websocket_messages_dropped_total > 0"), "dropped updates"
            )
            await _until(
                _has(prometheus, 'websocket_connections_closed_total{websocket_close_code="1013"}'),
                "slow-consumer closes",
            )

            await faults.set({"ballast_mb": 128})
            await _until(
                _has(prometheus, 'ALERTS{alertname="MarketApiMemoryHigh", alertstate="firing"}'),
                "MarketApiMemoryHigh firing",
            )


def run_every_query(prometheus_url: str, since: float) -> list[Row]:
    end = time.time()
    window = QueryWindow(range_seconds=end - since, scrape_interval=SCRAPE_INTERVAL, end=end)
    rows = []
    with PrometheusApi(prometheus_url) as api:
        for uid, dashboard in load_dashboards().items():
            for panel in fetch_dashboard(
                api, dashboard, window, {"__rate_interval": RATE_INTERVAL}
            ):
                for result in panel.results:
                    rows.append(
                        Row(
                            uid,
                            panel.title,
                            result.ref_id,
                            len(result.series),
                            sum(any(math.isfinite(v) for v in x.values) for x in result.series),
                            result.expr,
                            result.error,
                        )
                    )
    return rows


def _empty(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r.with_values == 0 and (r.dashboard, r.panel) not in EXCEPTIONS]


def collect_rows(prometheus_url: str, since: float) -> list[Row]:
    """Every query's rows, once none is empty or DATA_WITHIN has passed."""
    deadline = time.monotonic() + DATA_WITHIN
    while True:
        rows = run_every_query(prometheus_url, since)
        if not _empty(rows) or time.monotonic() > deadline:
            return rows
        time.sleep(1.0)


def series_table(rows: list[Row]) -> str:
    width = max(len(f"{r.dashboard} / {r.panel}") for r in rows)
    lines = [
        f"{'dashboard / panel':{width}}  ref  series  with values",
        f"{'-' * width}  ---  ------  -----------",
    ]
    for r in rows:
        count = "ERROR" if r.error else f"{r.series:>6}  {r.with_values:>11}"
        lines.append(f"{f'{r.dashboard} / {r.panel}':{width}}  {r.ref_id:3}  {count}")
    return "\n".join(lines) + "\n"


def test_every_panel_query_returns_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    started = time.monotonic()
    config = StackConfig.on_free_ports(
        scrape_interval="1s",
        evaluation_interval="1s",
        for_seconds=1,
        workdir=tmp_path / "stack",
        app_env=APP_ENV,
    )
    with Stack(config) as stack:
        since = time.time()
        asyncio.run(provoke_every_state(stack))
        rows = collect_rows(stack.prometheus_url, since)

    table = series_table(rows)
    report = tmp_path / "panel-series.txt"
    report.write_text(table)
    with capsys.disabled():
        print(f"\n{table}series table: {report}  ({time.monotonic() - started:.0f} s)")

    assert len(rows) == len(list(prometheus_queries())), "every target was run"
    failed = [r for r in rows if r.error]
    assert not failed, "queries Prometheus refused:\n" + "\n".join(
        f"{r.dashboard} / {r.panel} [{r.ref_id}]: {r.error}\n    {r.expr}" for r in failed
    )
    empty = _empty(rows)
    assert not empty, f"{len(empty)} targets returned no numbers:\n" + "\n".join(
        f"{r.dashboard} / {r.panel} [{r.ref_id}]:\n    {r.expr}" for r in empty
    )
