"""What each panel of a dashboard shows: its targets run against Prometheus as Grafana would.

Grafana asks a time-series panel for a range (`/api/v1/query_range`) and a stat, gauge or table
panel for one value per series (`/api/v1/query`, as with the panel's "Instant" option). Before
that it fills the variables in; the interval macros follow Grafana's own definitions:

- `$__interval` is the range divided by the panel's point budget (`max_points`, Grafana's
  `maxDataPoints`, about the panel's width in pixels), never below the scrape interval, rounded
  up to a whole second;
- `$__rate_interval` is `max($__interval + scrape interval, 4 x scrape interval)`: a rate window
  always holds at least four scrapes, so `rate()` has two samples even when one scrape is lost.
  With the committed 15 s scrape and a 15 minute range that is `1m`.

Tempo (TraceQL) targets cannot be run without Tempo; their panels come back as `TRACES`, and the
renderer says so on the panel instead of leaving it blank.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from dashboards.datasources import TEMPO_TYPE
from dashboards.prometheus_api import PrometheusApi, PrometheusQueryError, Series
from dashboards.queries import (
    DEFAULT_VARIABLES,
    is_prometheus,
    iter_panels,
    substitute,
    target_datasource,
)

DEFAULT_SCRAPE_INTERVAL: Final = 15.0
"""Seconds; the committed `alerts/prometheus.yml` scrapes every 15 s."""
DEFAULT_RANGE: Final = 15 * 60.0
MAX_POINTS: Final = 300

_DURATION: Final = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_SCALE: Final = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


class PanelKind(StrEnum):
    TIMESERIES = "timeseries"
    STAT = "stat"
    TABLE = "table"
    TRACES = "traces"
    TEXT = "text"
    OTHER = "other"


_KIND_BY_TYPE: Final[Mapping[str, PanelKind]] = {
    "timeseries": PanelKind.TIMESERIES,
    "graph": PanelKind.TIMESERIES,
    "heatmap": PanelKind.TIMESERIES,
    "barchart": PanelKind.TIMESERIES,
    "state-timeline": PanelKind.TIMESERIES,
    "stat": PanelKind.STAT,
    "singlestat": PanelKind.STAT,
    "gauge": PanelKind.STAT,
    "bargauge": PanelKind.STAT,
    "piechart": PanelKind.STAT,
    "table": PanelKind.TABLE,
    "text": PanelKind.TEXT,
}


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus/Grafana duration such as `15s`, `1m`, `500ms`."""
    match = _DURATION.fullmatch(text.strip())
    if match is None or float(match.group(1)) <= 0:
        raise ValueError(f"{text!r} is not a duration such as 15s, 5m or 1h")
    return float(match.group(1)) * _SCALE[match.group(2)]


def format_duration(seconds: float) -> str:
    """The shortest Prometheus duration for `seconds`: 60 -> `1m`, 90 -> `90s`, 0.5 -> `500ms`."""
    millis = round(seconds * 1000)
    if millis <= 0:
        raise ValueError("a duration must be positive")
    if millis % 1000:
        return f"{millis}ms"
    whole = millis // 1000
    for unit, size in (("h", 3600), ("m", 60)):
        if whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{whole}s"


@dataclass(frozen=True, slots=True)
class QueryWindow:
    """The time range every panel shows, and the interval macros that follow from it."""

    range_seconds: float = DEFAULT_RANGE
    scrape_interval: float = DEFAULT_SCRAPE_INTERVAL
    end: float | None = None
    """Unix time the range ends at; None: now, fixed once at construction."""
    max_points: int = MAX_POINTS

    def __post_init__(self) -> None:
        if self.range_seconds <= 0 or self.scrape_interval <= 0 or self.max_points < 1:
            raise ValueError("range, scrape interval and point budget must be positive")
        if self.end is None:
            object.__setattr__(self, "end", time.time())

    @property
    def stop(self) -> float:
        assert self.end is not None
        return self.end

    @property
    def start(self) -> float:
        return self.stop - self.range_seconds

    @property
    def step(self) -> float:
        """`$__interval` in seconds: also the step of every range query."""
        return float(math.ceil(max(self.scrape_interval, self.range_seconds / self.max_points)))

    @property
    def rate_interval(self) -> float:
        return max(self.step + self.scrape_interval, 4 * self.scrape_interval)

    def variables(self) -> dict[str, str]:
        return {
            "__interval": format_duration(self.step),
            "__interval_ms": str(round(self.step * 1000)),
            "__rate_interval": format_duration(self.rate_interval),
            "__range": format_duration(self.range_seconds),
            "__range_s": str(round(self.range_seconds)),
        }


@dataclass(frozen=True, slots=True)
class TargetResult:
    ref_id: str
    expr: str
    """As sent to Prometheus, variables filled in (as written when they could not be)."""
    legend_format: str
    series: tuple[Series, ...] = ()
    error: str | None = None


@dataclass(frozen=True, slots=True)
class PanelData:
    panel: Mapping[str, Any]
    kind: PanelKind
    results: tuple[TargetResult, ...] = ()

    @property
    def title(self) -> str:
        return str(self.panel.get("title", ""))

    @property
    def series_count(self) -> int:
        return sum(len(r.series) for r in self.results)


def panel_kind(panel: Mapping[str, Any]) -> PanelKind:
    targets = panel.get("targets") or [{}]
    if any(target_datasource(panel, t).get("type") == TEMPO_TYPE for t in targets):
        return PanelKind.TRACES
    return _KIND_BY_TYPE.get(str(panel.get("type")), PanelKind.OTHER)


def prometheus_targets(panel: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The targets of `panel` that Grafana sends to Prometheus, in panel order."""
    return [
        t
        for t in panel.get("targets", [])
        if "expr" in t and is_prometheus(target_datasource(panel, t))
    ]


def fetch_panel(
    api: PrometheusApi,
    panel: Mapping[str, Any],
    window: QueryWindow,
    variables: Mapping[str, str] | None = None,
) -> PanelData:
    """Run every Prometheus target of `panel`; a refused query is recorded on its target (as
    Grafana shows it on the panel), PrometheusUnreachable propagates."""
    kind = panel_kind(panel)
    if kind not in (PanelKind.TIMESERIES, PanelKind.STAT, PanelKind.TABLE):
        return PanelData(panel, kind)
    values = {**DEFAULT_VARIABLES, **window.variables(), **(variables or {})}
    results = []
    for target in prometheus_targets(panel):
        ref_id = str(target.get("refId", ""))
        legend = str(target.get("legendFormat") or "")
        try:
            expr = substitute(str(target["expr"]), values)
        except KeyError as exc:
            results.append(
                TargetResult(
                    ref_id, target["expr"], legend, error=f"unknown variable ${exc.args[0]}"
                )
            )
            continue
        try:
            if kind is PanelKind.TIMESERIES:
                series = api.query_range(expr, window.start, window.stop, window.step)
            else:
                series = api.query(expr, at=window.stop)
        except PrometheusQueryError as exc:
            results.append(TargetResult(ref_id, expr, legend, error=str(exc)))
            continue
        results.append(TargetResult(ref_id, expr, legend, tuple(series)))
    return PanelData(panel, kind, tuple(results))


def fetch_dashboard(
    api: PrometheusApi,
    dashboard: Mapping[str, Any],
    window: QueryWindow,
    variables: Mapping[str, str] | None = None,
) -> list[PanelData]:
    """`fetch_panel` for every panel of `dashboard` (rows left out, collapsed ones opened)."""
    return [fetch_panel(api, panel, window, variables) for panel in iter_panels(dashboard)]
