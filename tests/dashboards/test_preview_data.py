"""Interval macros as Grafana computes them, and which panels are queried how."""

from __future__ import annotations

import pytest

from dashboards.preview_data import (
    PanelKind,
    QueryWindow,
    format_duration,
    panel_kind,
    parse_duration,
    prometheus_targets,
)


@pytest.mark.parametrize(
    ("text", "seconds"), [("15s", 15), ("1m", 60), ("500ms", 0.5), ("2h", 7200), ("1d", 86400)]
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "15", "0s", "-1m", "1w", "1m30s"])
def test_malformed_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "text"), [(60, "1m"), (90, "90s"), (3600, "1h"), (0.5, "500ms"), (4, "4s")]
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("range_s", "scrape_s", "interval", "rate_interval"),
    [
        # The committed 15 s scrape: at least four scrapes per rate window.
        (900, 15, "15s", "1m"),
        # A long range: the step grows, and the rate window with it (step + one scrape).
        (6 * 3600, 15, "72s", "87s"),
        # The tests' 1 s scrape.
        (120, 1, "1s", "4s"),
        (3600, 1, "12s", "13s"),
    ],
)
def test_interval_macros(
    range_s: float, scrape_s: float, interval: str, rate_interval: str
) -> None:
    window = QueryWindow(range_seconds=range_s, scrape_interval=scrape_s, end=1_000_000.0)
    variables = window.variables()
    assert variables["__interval"] == interval
    assert variables["__rate_interval"] == rate_interval
    assert window.start == 1_000_000.0 - range_s


def test_panel_kinds() -> None:
    prometheus = {"type": "prometheus", "uid": "prometheus"}
    tempo = {"type": "tempo", "uid": "tempo"}
    assert panel_kind({"type": "timeseries", "datasource": prometheus}) is PanelKind.TIMESERIES
    assert panel_kind({"type": "gauge"}) is PanelKind.STAT
    assert panel_kind({"type": "table"}) is PanelKind.TABLE
    assert panel_kind({"type": "table", "datasource": tempo}) is PanelKind.TRACES
    assert (
        panel_kind({"type": "table", "targets": [{"datasource": tempo, "query": "{}"}]})
        is PanelKind.TRACES
    )
    assert panel_kind({"type": "alertlist"}) is PanelKind.OTHER


def test_only_prometheus_targets_are_sent() -> None:
    panel = {
        "datasource": {"type": "prometheus", "uid": "$datasource"},
        "targets": [
            {"refId": "A", "expr": "up"},
            {"refId": "B", "expr": "up", "datasource": {"type": "tempo", "uid": "tempo"}},
            {"refId": "C", "query": "{}"},
        ],
    }
    assert [t["refId"] for t in prometheus_targets(panel)] == ["A"]
