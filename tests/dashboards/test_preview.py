"""`python -m dashboards.preview`: PNGs from Prometheus answers, and a clean exit 2 when it cannot.

A small fixture dashboard (a time series with a threshold, a stat, a table, a collapsed row with
a Tempo panel) is drawn from a local server that answers in Prometheus's own wire format and
records what it was asked, so the tests can check each query Grafana would send; the last test
draws the committed dashboards from a real Prometheus scraping the real app.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from dashboards.preview import build_parser, main, parse_time
from dashboards.queries import load_dashboards
from devstack.loadgen import LoadConfig, LoadGenerator
from devstack.process import free_port
from devstack.stack import Stack, StackConfig
from tests.support.fake_prometheus import FakePrometheus, FakeSeries
from tests.support.png import assert_real_png, red_share

REPO_ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = {"type": "prometheus", "uid": "$datasource"}
TEMPO = {"type": "tempo", "uid": "tempo"}

RATE_EXPR = (
    "sum by (http_route) (rate(http_server_request_duration_seconds_count"
    '{job=~"$job", instance=~"$instance"}[$__rate_interval]))'
)
RATE_SENT = (
    "sum by (http_route) (rate(http_server_request_duration_seconds_count"
    '{job=~"market-api", instance=~".*"}[1m]))'
)
HIT_RATIO_EXPR = 'job:cache_hits_per_cache_requests:ratio_rate5m{job=~"$job"}'
HIT_RATIO_SENT = 'job:cache_hits_per_cache_requests:ratio_rate5m{job=~"market-api"}'
TABLE_EXPR = 'topk(5, sum by (http_route) (increase(x_total{job=~"$job"}[$__range])))'
TABLE_SENT = 'topk(5, sum by (http_route) (increase(x_total{job=~"market-api"}[15m])))'
TRACEQL = '{ resource.service.name = "market-api" && duration > 100ms }'


def timeseries(title: str, expr: str, steps: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "timeseries",
        "title": title,
        "datasource": PROMETHEUS,
        "gridPos": {"x": 0, "y": 1, "w": 12, "h": 8},
        "fieldConfig": {"defaults": {"unit": "reqps", "thresholds": {"steps": steps}}},
        "targets": [
            {"refId": "A", "expr": expr, "legendFormat": "{{http_route}}", "datasource": PROMETHEUS}
        ],
    }


def fixture_dashboard(uid: str = "fixture", *, threshold: bool = True) -> dict[str, Any]:
    steps: list[dict[str, Any]] = [{"color": "green", "value": None}]
    if threshold:
        steps.append({"color": "red", "value": 6})
    return {
        "uid": uid,
        "title": "Fixture overview",
        "panels": [
            {"type": "row", "title": "Traffic", "gridPos": {"x": 0, "y": 0, "w": 24, "h": 1}},
            timeseries("Requests per route", RATE_EXPR, steps),
            {
                "type": "stat",
                "title": "Cache hit ratio",
                "datasource": PROMETHEUS,
                "gridPos": {"x": 12, "y": 1, "w": 6, "h": 8},
                "fieldConfig": {
                    "defaults": {
                        "unit": "percentunit",
                        "thresholds": {
                            "steps": [
                                {"color": "red", "value": None},
                                {"color": "green", "value": 0.8},
                            ]
                        },
                    }
                },
                "targets": [{"refId": "A", "expr": HIT_RATIO_EXPR, "instant": True}],
            },
            {
                "type": "table",
                "title": "Busiest routes",
                "datasource": PROMETHEUS,
                "gridPos": {"x": 18, "y": 1, "w": 6, "h": 8},
                "fieldConfig": {"defaults": {"unit": "short"}},
                "targets": [{"refId": "A", "expr": TABLE_EXPR, "format": "table"}],
            },
            {
                "type": "row",
                "title": "Traces",
                "collapsed": True,
                "gridPos": {"x": 0, "y": 9, "w": 24, "h": 1},
                "panels": [
                    {
                        "type": "table",
                        "title": "Slow traces",
                        "datasource": TEMPO,
                        "gridPos": {"x": 0, "y": 30, "w": 24, "h": 6},
                        "targets": [{"refId": "A", "queryType": "traceql", "query": TRACEQL}],
                    }
                ],
            },
        ],
    }


def fake_prometheus() -> FakePrometheus:
    routes = ("/api/market/movers", "/api/market/tickers/{symbol}")
    return FakePrometheus(
        {
            RATE_SENT: [FakeSeries({"http_route": r}, 2.5 * (i + 1)) for i, r in enumerate(routes)],
            HIT_RATIO_SENT: [FakeSeries({"job": "market-api"}, 0.934)],
            TABLE_SENT: [
                FakeSeries({"http_route": r}, 120 * (i + 1)) for i, r in enumerate(routes)
            ],
        }
    )


def write_dashboards(directory: Path, *dashboards: dict[str, Any]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for dashboard in dashboards:
        (directory / f"{dashboard['uid']}.json").write_text(json.dumps(dashboard))
    return directory


def preview(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dashboards.preview", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_draws_each_panel_from_the_queries_grafana_would_send(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    json_dir = write_dashboards(tmp_path / "json", fixture_dashboard())
    out = tmp_path / "out"
    with fake_prometheus() as prom:
        before = time.time()
        code = main(["--prometheus", prom.url, "--out", str(out), "--json-dir", str(json_dir)])
        after = time.time()
    assert code == 0
    assert_real_png(out / "fixture.png")
    assert "fixture: 4 panels, 3 queried" in capsys.readouterr().out
    # Time series: one range query over the last 15 minutes, one point per 15 s scrape.
    [ranged] = [r for r in prom.requests if r.path == "/api/v1/query_range"]
    assert ranged.params["query"] == RATE_SENT
    start, end = float(ranged.params["start"]), float(ranged.params["end"])
    assert before - 1 <= end <= after + 1
    assert end - start == pytest.approx(900, abs=0.01)
    assert float(ranged.params["step"]) == 15
    # Stat and table: one instant query each, at the range's end.
    instant = [r for r in prom.requests if r.path == "/api/v1/query"]
    assert [r.params["query"] for r in instant] == [HIT_RATIO_SENT, TABLE_SENT]
    assert all(float(r.params["time"]) == pytest.approx(end, abs=0.01) for r in instant)
    # TraceQL never reaches Prometheus.
    assert not any("resource.service.name" in str(r.params) for r in prom.requests)


def test_interval_macros_follow_the_scrape_interval_and_range(tmp_path: Path) -> None:
    dashboard = fixture_dashboard()
    json_dir = write_dashboards(tmp_path / "json", dashboard)
    with fake_prometheus() as prom:
        code = main(
            [
                "--prometheus",
                prom.url,
                "--out",
                str(tmp_path / "out"),
                "--json-dir",
                str(json_dir),
                "--range",
                "1h",
                "--scrape-interval",
                "1s",
            ]
        )
    assert code == 0
    # 1h over 300 points: 12 s steps; rate window max(12 s + 1 s, 4 x 1 s) = 13 s.
    [ranged] = [r for r in prom.requests if r.path == "/api/v1/query_range"]
    assert float(ranged.params["step"]) == 12
    assert ranged.params["query"] == RATE_SENT.replace("[1m]", "[13s]")
    assert TABLE_SENT.replace("[15m]", "[1h]") in prom.queries("/api/v1/query")


def test_threshold_lines_are_drawn_at_the_threshold_steps(tmp_path: Path) -> None:
    """The red step (at 6 req/s) becomes a dashed red line across the time series; without it
    the same picture has (almost) no red."""
    for uid, threshold in (("with", True), ("without", False)):
        dashboard = fixture_dashboard(uid, threshold=threshold)
        dashboard["panels"] = dashboard["panels"][:2]  # the time series alone
        write_dashboards(tmp_path / uid, dashboard)
        with fake_prometheus() as prom:
            argv = ["--prometheus", prom.url, "--out", str(tmp_path / "out")]
            assert main([*argv, "--json-dir", str(tmp_path / uid)]) == 0
    with_line = red_share(tmp_path / "out" / "with.png")
    without_line = red_share(tmp_path / "out" / "without.png")
    # A dashed line across a 12-column panel and its label: about a thousand pixels.
    assert with_line > 0.001, with_line
    assert without_line < with_line / 20, (with_line, without_line)


def test_a_refused_query_is_drawn_on_its_panel_and_the_rest_still_render(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dashboard = fixture_dashboard()
    dashboard["panels"][1]["targets"][0]["expr"] = "sum(rate(broken["
    json_dir = write_dashboards(tmp_path / "json", dashboard)
    with fake_prometheus() as prom:
        code = main(["--prometheus", prom.url, "--out", str(tmp_path), "--json-dir", str(json_dir)])
    assert code == 0
    assert "query errors in: Requests per route" in capsys.readouterr().out
    assert_real_png(tmp_path / "fixture.png")


def test_dashboard_picks_one_or_more_uids(tmp_path: Path) -> None:
    json_dir = write_dashboards(
        tmp_path / "json", *(fixture_dashboard(uid) for uid in ("a", "b", "c"))
    )
    with fake_prometheus() as prom:
        argv = ["--prometheus", prom.url, "--out", str(tmp_path / "out"), "--json-dir"]
        assert main([*argv, str(json_dir), "--dashboard", "c", "a"]) == 0
        assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a.png", "c.png"]
        assert main([*argv, str(json_dir), "--dashboard", "b", "--dashboard", "b"]) == 0
    assert (tmp_path / "out" / "b.png").is_file()


def test_unreachable_prometheus_exits_2_with_one_line(tmp_path: Path) -> None:
    json_dir = write_dashboards(tmp_path / "json", fixture_dashboard())
    url = f"http://127.0.0.1:{free_port()}"
    done = preview("--prometheus", url, "--out", str(tmp_path / "out"), "--json-dir", str(json_dir))
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "cannot reach" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


def test_unknown_dashboard_exits_2_naming_the_known_ones(tmp_path: Path) -> None:
    json_dir = write_dashboards(tmp_path / "json", fixture_dashboard())
    with fake_prometheus() as prom:
        done = preview(
            "--prometheus",
            prom.url,
            "--out",
            str(tmp_path / "out"),
            "--json-dir",
            str(json_dir),
            "--dashboard",
            "nope",
        )
    assert done.returncode == 2
    assert done.stderr.strip() == "dashboards.preview: unknown dashboard uid nope (known: fixture)"
    assert not prom.requests, "nothing is queried for a dashboard that does not exist"


# ---------------------------------------------------------------------- real Prometheus
async def _traffic_until_scraped(stack: Stack, within: float = 60.0) -> None:
    """Requests and sockets until Prometheus has a request rate (its first scrape of a new
    target comes a few seconds after it starts)."""
    config = LoadConfig(url=stack.app_url, rate=20, websockets=2, duration=within, seed=3)
    expr = "rate(http_server_request_duration_seconds_count[5s]) > 0"
    async with (
        LoadGenerator(config),
        httpx.AsyncClient(base_url=stack.prometheus_url, timeout=10.0) as prometheus,
    ):
        deadline = time.monotonic() + within
        while True:
            response = await prometheus.get("/api/v1/query", params={"query": expr})
            if response.status_code == 200 and response.json()["data"]["result"]:
                return
            assert time.monotonic() < deadline, f"Prometheus never had {expr}"
            await asyncio.sleep(0.5)


@pytest.mark.prometheus
@pytest.mark.memcached
@pytest.mark.alertmanager
@pytest.mark.server
@pytest.mark.timeout(180)
def test_committed_dashboards_render_from_a_real_prometheus(tmp_path: Path) -> None:
    dashboards = load_dashboards()
    assert dashboards, "no committed dashboard JSON"
    config = StackConfig.on_free_ports(
        scrape_interval="1s",
        evaluation_interval="1s",
        workdir=tmp_path / "stack",
        app_env={"LOG_LEVEL": "warning"},
    )
    with Stack(config) as stack:
        asyncio.run(_traffic_until_scraped(stack))
        out = tmp_path / "preview"
        done = preview(
            "--prometheus", stack.prometheus_url, "--out", str(out), "--range", "1m",
            "--scrape-interval", "1s",
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    for uid in dashboards:
        assert f"{uid}: " in done.stdout
        assert_real_png(out / f"{uid}.png")


def test_the_docs_section_names_every_option_and_shows_a_real_picture() -> None:
    section = (
        (REPO_ROOT / "docs" / "dashboards.md").read_text().split("## Preview without Grafana", 1)[1]
    )
    options = [a.option_strings[-1] for a in build_parser()._actions if a.option_strings]
    missing = [o for o in options if o != "--help" and f"`{o}" not in section and o not in section]
    assert not missing, f"options not documented: {missing}"
    picture = REPO_ROOT / "docs" / "images" / "market-api-overview.png"
    assert "(images/market-api-overview.png)" in section
    assert_real_png(picture, min_bytes=50_000)
    assert picture.stat().st_size < 400_000, "keep the README picture small"


def test_end_places_the_range_in_the_past(tmp_path: Path) -> None:
    json_dir = write_dashboards(tmp_path / "json", fixture_dashboard())
    with fake_prometheus() as prom:
        argv = ["--prometheus", prom.url, "--out", str(tmp_path), "--json-dir", str(json_dir)]
        assert main([*argv, "--end", "2026-12-02T06:30:00Z", "--range", "5m"]) == 0
    [ranged] = [r for r in prom.requests if r.path == "/api/v1/query_range"]
    end = datetime(2026, 12, 2, 6, 30, tzinfo=UTC).timestamp()
    assert float(ranged.params["end"]) == end
    assert float(ranged.params["start"]) == end - 300


@pytest.mark.parametrize("end", ["1796193000", "2026-12-02 06:30", "2026-12-02T07:30:00+01:00"])
def test_end_formats(end: str) -> None:
    assert parse_time(end) == datetime(2026, 12, 2, 6, 30, tzinfo=UTC).timestamp()


def test_a_malformed_option_is_a_usage_error(tmp_path: Path) -> None:
    for bad in (["--range", "soon"], ["--end", "yesterday"], ["--scrape-interval", "0s"]):
        done = preview("--prometheus", "http://127.0.0.1:9", "--out", str(tmp_path), *bad)
        assert done.returncode == 2, bad
        assert "Traceback" not in done.stderr
        assert (
            done.stderr.strip().splitlines()[-1].startswith("python -m dashboards.preview: error: ")
        ), done.stderr
