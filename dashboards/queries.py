"""Read the committed dashboard JSON back: its panels, their PromQL, with variables filled in.

Checks that run the dashboards' queries against a real Prometheus, and renderings of the panels
outside Grafana, need the same two things: every Prometheus target of every panel, and the PromQL
Grafana would actually send once `$job`, `$instance` and the interval macros are replaced. Both
live here so that those tools read the JSON exactly as Grafana does, and so that this module
needs nothing but the standard library (no SDK: the JSON is the contract).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Final, NamedTuple

from dashboards.datasources import DATASOURCE_VARIABLE, PROMETHEUS_TYPE, PROMETHEUS_UID
from telemetry.thresholds import JOB

JSON_DIR: Final = Path(__file__).resolve().parent / "json"
"""One `<uid>.json` per dashboard, as `python -m dashboards.generate` writes them."""

DEFAULT_VARIABLES: Final[Mapping[str, str]] = {
    "job": JOB,
    # Matches Grafana's "All" for the instance variable, whose allValue is `.*`.
    "instance": ".*",
    DATASOURCE_VARIABLE: PROMETHEUS_UID,
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
}
"""What each variable stands for when nothing else is said: the defaults the dashboards open
with, and interval macros suited to a 15 s scrape interval."""

_VARIABLE: Final = re.compile(r"\$\{(\w+)\}|\$(\w+)")


class PanelQuery(NamedTuple):
    """One Prometheus target of one panel, its expression as written in the JSON."""

    dashboard_uid: str
    panel_title: str
    expr: str


def load_dashboards(directory: Path = JSON_DIR) -> dict[str, dict[str, Any]]:
    """Every dashboard in `directory`, by uid, in file-name order."""
    dashboards: dict[str, dict[str, Any]] = {}
    for path in sorted(directory.glob("*.json")):
        dashboard: dict[str, Any] = json.loads(path.read_text())
        dashboards[dashboard["uid"]] = dashboard
    return dashboards


def iter_panels(dashboard: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that shows data, rows left out; panels folded inside a collapsed row
    included."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def target_datasource(panel: Mapping[str, Any], target: Mapping[str, Any]) -> dict[str, Any]:
    """The datasource a target queries: its own, else its panel's (Grafana's precedence)."""
    datasource = target.get("datasource") or panel.get("datasource") or {}
    return dict(datasource)


def is_prometheus(datasource: Mapping[str, Any]) -> bool:
    return datasource.get("type") == PROMETHEUS_TYPE


def prometheus_queries(directory: Path = JSON_DIR) -> Iterator[PanelQuery]:
    """(dashboard uid, panel title, expr) for every Prometheus target of every dashboard."""
    for uid, dashboard in load_dashboards(directory).items():
        for panel in iter_panels(dashboard):
            for target in panel.get("targets", []):
                if is_prometheus(target_datasource(panel, target)) and "expr" in target:
                    yield PanelQuery(uid, panel["title"], target["expr"])


def substitute(text: str, variables: Mapping[str, str] | None = None) -> str:
    """`text` with `$name` and `${name}` replaced as Grafana would: `variables` first, then
    DEFAULT_VARIABLES. An unknown variable raises KeyError rather than reaching Prometheus as
    text that happens to parse."""
    values = {**DEFAULT_VARIABLES, **(variables or {})}

    def replace(match: re.Match[str]) -> str:
        return values[match.group(1) or match.group(2)]

    return _VARIABLE.sub(replace, text)
