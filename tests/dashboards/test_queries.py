"""The JSON reader other tools use sees every Prometheus target and fills variables like
Grafana."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dashboards.queries import PanelQuery, iter_panels, prometheus_queries, substitute

PROMETHEUS = {"type": "prometheus", "uid": "$datasource"}
TEMPO = {"type": "tempo", "uid": "tempo"}


def panel(title: str, *targets: dict[str, Any], datasource: Any = PROMETHEUS) -> dict[str, Any]:
    return {"type": "timeseries", "title": title, "datasource": datasource, "targets": targets}


def write(directory: Path, uid: str, panels: list[dict[str, Any]]) -> None:
    (directory / f"{uid}.json").write_text(json.dumps({"uid": uid, "panels": panels}))


def test_every_prometheus_target_of_every_dashboard(tmp_path: Path) -> None:
    write(
        tmp_path,
        "b",
        [
            panel("Rate", {"refId": "A", "expr": "up"}, {"refId": "B", "expr": "vector(1)"}),
            panel(
                "Traces", {"refId": "A", "query": "{}", "queryType": "traceql"}, datasource=TEMPO
            ),
            {
                "type": "row",
                "title": "Folded",
                "collapsed": True,
                "panels": [panel("Inside", {"refId": "A", "expr": "time()"})],
            },
            # The target's own datasource wins over the panel's.
            panel("Mixed", {"refId": "A", "expr": "up", "datasource": TEMPO}),
        ],
    )
    write(tmp_path, "a", [panel("First", {"refId": "A", "expr": "process_memory_usage_bytes"})])
    assert list(prometheus_queries(tmp_path)) == [
        PanelQuery("a", "First", "process_memory_usage_bytes"),
        PanelQuery("b", "Rate", "up"),
        PanelQuery("b", "Rate", "vector(1)"),
        PanelQuery("b", "Inside", "time()"),
    ]


def test_rows_are_not_panels() -> None:
    dashboard = {"panels": [{"type": "row", "title": "Open", "panels": []}, panel("P")]}
    assert [p["title"] for p in iter_panels(dashboard)] == ["P"]


def test_substitute_fills_both_spellings_and_the_macros() -> None:
    expr = 'rate(x{job=~"$job", instance=~"${instance}"}[$__rate_interval]) @ $__interval'
    assert substitute(expr) == 'rate(x{job=~"market-api", instance=~".*"}[1m]) @ 15s'


def test_substitute_takes_overrides() -> None:
    filled = substitute(
        'up{job=~"$job"}[$__rate_interval]', {"job": "other", "__rate_interval": "2m"}
    )
    assert filled == 'up{job=~"other"}[2m]'


def test_an_unknown_variable_is_an_error() -> None:
    with pytest.raises(KeyError, match="cluster"):
        substitute('up{cluster="$cluster"}')
