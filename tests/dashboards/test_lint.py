"""The committed dashboards follow the rules, and the lint catches each kind of breach."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from dashboards import catalog
from dashboards.datasources import PROVISIONED_UIDS
from dashboards.lint import lint, parse, query_problems
from dashboards.queries import iter_panels, load_dashboards
from telemetry.fleet_thresholds import FLEET_WEBSOCKETS_NEAR_CAPACITY, REPLICAS_MISSING
from telemetry.instruments import HTTP_DURATION_BUCKETS
from telemetry.thresholds import (
    CACHE_HIT_RATE_LOW,
    HIGH_LATENCY,
    LATENCY_MAX_SECONDS,
    MEMORY_HIGH,
    MEMORY_LEAK_SUSPECTED,
    TOO_MANY_WEBSOCKETS,
    Threshold,
)

COMMITTED = load_dashboards()
Dashboard = dict[str, Any]


def test_the_committed_dashboards_pass() -> None:
    assert set(COMMITTED) == {entry.uid for entry in catalog.ALL}
    assert lint(COMMITTED) == []


def test_the_provisioned_datasource_uids() -> None:
    assert {"prometheus", "tempo", "alertmanager"} == PROVISIONED_UIDS


@pytest.mark.parametrize(
    "alert",
    [
        CACHE_HIT_RATE_LOW,
        HIGH_LATENCY,
        MEMORY_HIGH,
        MEMORY_LEAK_SUSPECTED,
        TOO_MANY_WEBSOCKETS,
        FLEET_WEBSOCKETS_NEAR_CAPACITY,
    ],
    ids=lambda t: t.alert,
)
def test_each_alert_threshold_is_drawn_where_its_runbook_is_linked(alert: Threshold) -> None:
    drawn = [
        step["value"]
        for dashboard in COMMITTED.values()
        for panel in iter_panels(dashboard)
        if any(
            link.get("url", "").endswith(f"#{alert.runbook_anchor}")
            for link in panel.get("links", [])
        )
        for step in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
        if step["value"] is not None
    ]
    assert alert.value in drawn


def test_the_replicas_row_links_the_missing_replicas_runbook_without_a_line() -> None:
    overview = COMMITTED[catalog.OVERVIEW.uid]
    [panel] = [p for p in iter_panels(overview) if p["title"] == "Replicas up"]
    urls = [link["url"] for link in panel["links"]]
    assert any(url.endswith(f"#{REPLICAS_MISSING.runbook_anchor}") for url in urls)
    steps = panel["fieldConfig"]["defaults"]["thresholds"]["steps"]
    assert [s["value"] for s in steps] == [None]


def test_slow_request_panels_use_the_latency_threshold() -> None:
    # `le="0.1"` only counts requests up to the threshold if the threshold is a bucket bound.
    assert LATENCY_MAX_SECONDS in HTTP_DURATION_BUCKETS
    slow = COMMITTED[catalog.SLOW_REQUESTS.uid]
    traceql = [t["query"] for p in iter_panels(slow) for t in p["targets"] if "query" in t]
    assert traceql == [
        '{ resource.service.name = "market-api" && (duration > 100ms || status = error) }'
    ]


def test_latency_panels_have_exemplars() -> None:
    overview = COMMITTED[catalog.OVERVIEW.uid]
    latency = [p for p in iter_panels(overview) if p["title"].startswith("Latency")]
    assert len(latency) == 3
    for panel in latency:
        assert panel["targets"][0]["exemplar"] is True


# --- the lint can fail ---------------------------------------------------------------------


def first_panel(dashboard: Dashboard, title: str) -> dict[str, Any]:
    return next(p for p in iter_panels(dashboard) if p["title"].startswith(title))


def breach(uid: str, change: Callable[[Dashboard], None]) -> list[str]:
    dashboards = copy.deepcopy(COMMITTED)
    change(dashboards[uid])
    return lint(dashboards)


def set_expr(title: str, expr: str) -> Callable[[Dashboard], None]:
    def change(d: Dashboard) -> None:
        first_panel(d, title)["targets"][0]["expr"] = expr

    return change


def remove(title: str, *path: str) -> Callable[[Dashboard], None]:
    def change(d: Dashboard) -> None:
        node = first_panel(d, title)
        for key in path[:-1]:
            node = node[key]
        del node[path[-1]]

    return change


def set_step(title: str, old: float, new: float) -> Callable[[Dashboard], None]:
    def change(d: Dashboard) -> None:
        for step in first_panel(d, title)["fieldConfig"]["defaults"]["thresholds"]["steps"]:
            if step["value"] == old:
                step["value"] = new

    return change


def set_unit(title: str, unit: str) -> Callable[[Dashboard], None]:
    def change(d: Dashboard) -> None:
        first_panel(d, title)["fieldConfig"]["defaults"]["unit"] = unit

    return change


def add_link(title: str, url: str) -> Callable[[Dashboard], None]:
    def change(d: Dashboard) -> None:
        first_panel(d, title).setdefault("links", []).append(
            {"title": "x", "type": "link", "url": url}
        )

    return change


def duplicate_ids(d: Dashboard) -> None:
    d["panels"][1]["id"] = d["panels"][0]["id"]


def foreign_datasource(d: Dashboard) -> None:
    first_panel(d, "Request rate")["datasource"] = {"type": "prometheus", "uid": "grafanacloud"}


def datasource_default(d: Dashboard) -> None:
    d["templating"]["list"][0]["current"]["value"] = "other"


def variable_datasource(d: Dashboard) -> None:
    d["templating"]["list"][1]["datasource"] = {"type": "prometheus", "uid": "mimir"}


def no_exemplars(d: Dashboard) -> None:
    first_panel(d, "Latency p99")["targets"][0]["exemplar"] = False


RATE = 'sum(rate(x_total{job=~"$job", instance=~"$instance"}[5m]))'
OVERVIEW = catalog.OVERVIEW.uid
BREACHES = {
    "no description": (OVERVIEW, remove("Request rate", "description")),
    "no unit": (OVERVIEW, remove("Request rate", "fieldConfig", "defaults", "unit")),
    "rate over [5m]": (OVERVIEW, set_expr("Request rate", RATE)),
    'does not filter on job=~"$job"': (
        OVERVIEW,
        set_expr("Request rate", 'up{instance=~"$instance"}'),
    ),
    'does not filter on instance=~"$instance"': (
        OVERVIEW,
        set_expr("Request rate", 'up{job=~"$job"}'),
    ),
    "no series selector": (OVERVIEW, set_expr("Request rate", "vector(1)")),
    "used 2 times": (OVERVIEW, duplicate_ids),
    "is not one of": (OVERVIEW, foreign_datasource),
    "does not default to 'prometheus'": (OVERVIEW, datasource_default),
    "is not an alert threshold": (OVERVIEW, set_step("Latency p95", 0.1, 0.2)),
    "draws no threshold at 0.1": (OVERVIEW, set_step("Latency p95", 0.1, 0.2)),
    "but MarketApiHighLatency is in 's'": (OVERVIEW, set_unit("Latency p95", "ms")),
    "points at no dashboard": (OVERVIEW, add_link("Request rate", "/d/market-api-gone/x")),
    "points at no runbook section": (OVERVIEW, add_link("Request rate", "docs/runbooks.md#nope")),
    "neither a dashboard nor a runbook": (OVERVIEW, add_link("Request rate", "https://x.test")),
    "latency without exemplars": (OVERVIEW, no_exemplars),
    "variable 'job': datasource uid 'mimir'": (OVERVIEW, variable_datasource),
}


@pytest.mark.parametrize("expected", list(BREACHES))
def test_the_lint_reports_each_breach(expected: str) -> None:
    uid, change = BREACHES[expected]
    problems = breach(uid, change)
    assert any(expected in p for p in problems), problems


def test_a_dashboard_tag_menu_needs_a_dashboard_with_that_tag() -> None:
    def retag(d: Dashboard) -> None:
        d["links"][0]["tags"] = ["nobody-has-this"]

    assert any("no dashboard has the tags" in p for p in breach(OVERVIEW, retag))


@pytest.mark.parametrize(
    ("expr", "selectors", "ranges"),
    [
        (
            'sum by (le) (rate(a_bucket{job=~"$job"}[$__rate_interval]))',
            ["a_bucket"],
            ["$__rate_interval"],
        ),
        ("count(ALERTS) or on() vector(0)", ["ALERTS"], []),
        ('max(predict_linear(m{job="x"}[1h], 60)) by (instance)', ["m"], []),
        ('a:b:c{job=~"$job"} / ignoring(x) group_left d', ["a:b:c", "d"], []),
        ('increase({__name__="x"}[2m] offset 5m)', [None], ["2m"]),
    ],
)
def test_parse_finds_selectors_and_rate_ranges(
    expr: str, selectors: list[str | None], ranges: list[str]
) -> None:
    parsed = parse(expr)
    assert [s.metric for s in parsed.selectors] == selectors
    assert list(parsed.rate_ranges) == ranges


def test_job_level_series_need_no_instance() -> None:
    assert query_problems('job:x:rate5m{job=~"$job"} + on() count(ALERTS{job=~"$job"})') == []
