"""Rules every dashboard of the service must follow, checked on the JSON Grafana loads.

The panel builders already follow these rules; the lint exists because the JSON is what ships,
and a hand edit, a new builder or an SDK upgrade can break them silently. `lint()` returns one
sentence per problem (empty when all is well); the generator refuses to write dashboards that
have any, and the tests run it over the committed files.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from dashboards.datasources import (
    ALERTMANAGER_TYPE,
    ALERTMANAGER_UID,
    DATASOURCE_VARIABLE,
    PROMETHEUS_TYPE,
    PROMETHEUS_UID,
    PROVISIONED_UIDS,
    TEMPO_TYPE,
    TEMPO_UID,
)
from dashboards.links import DASHBOARD_TAG, RUNBOOK_BASE_URL
from dashboards.promql import INSTANCE_MATCHER, JOB_MATCHER, RATE_INTERVAL
from dashboards.queries import iter_panels, target_datasource
from telemetry.fleet_thresholds import FLEET_THRESHOLDS, REPLICAS_MISSING
from telemetry.thresholds import THRESHOLDS, Comparison, Threshold

DATASOURCE_TYPES: Final = {
    PROMETHEUS_UID: PROMETHEUS_TYPE,
    TEMPO_UID: TEMPO_TYPE,
    ALERTMANAGER_UID: ALERTMANAGER_TYPE,
}
RATE_FUNCTIONS: Final = frozenset({"rate", "irate", "increase"})
JOB_LEVEL_SERIES: Final = frozenset({"ALERTS", "ALERTS_FOR_STATE"})
"""Series without the app's `instance`: Prometheus' alert state (recording rules, spelled
`level:metric:operations`, are recognised by their colons)."""
_EVERY_ALERT: Final = (*THRESHOLDS, *FLEET_THRESHOLDS)
_BY_ANCHOR: Final[Mapping[str, Threshold]] = {t.runbook_anchor: t for t in _EVERY_ALERT}
# Alerts on a level have a line to draw. `== 0` (a target down) is a state, not a level; the
# missing-replica count compares the fleet with its own past peak, a difference no panel plots.
_UNDRAWN: Final = frozenset(
    {t.alert for t in _EVERY_ALERT if t.condition.op is Comparison.EQ} | {REPLICAS_MISSING.alert}
)
_LEVEL_VALUES: Final = frozenset(t.value for t in _EVERY_ALERT if t.alert not in _UNDRAWN)
_GROUPING: Final = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_KEYWORDS: Final = frozenset(
    {"and", "or", "unless", "bool", "offset", "atan2", "group_left", "group_right"}
)
_AGGREGATIONS: Final = frozenset(
    {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
     "bottomk", "topk", "quantile", "limitk", "limit_ratio"}
)  # fmt: skip
_TOKEN: Final = re.compile(
    r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<braces>\{(?:[^{}"']|"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')*\})
  | (?P<range>\[[^\]]*\])
  | (?P<number>[0-9][0-9A-Za-z.]*)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<open>\()
  | (?P<close>\))
  | (?P<other>[^\s])
  | \s+
    """,
    re.VERBOSE,
)
_MATCHER: Final = re.compile(r'(\w+)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
_DASHBOARD_URL: Final = re.compile(r"^/d/([^/?#]+)")


@dataclass(frozen=True)
class Selector:
    metric: str | None
    matchers: tuple[str, ...]
    """Each `label op "value"`, spaces normalised, as JOB_MATCHER and INSTANCE_MATCHER spell
    them."""


@dataclass(frozen=True)
class ParsedQuery:
    selectors: tuple[Selector, ...]
    rate_ranges: tuple[str, ...]
    """The `[...]` range of every rate()/irate()/increase() call, brackets stripped."""


def parse(expr: str) -> ParsedQuery:
    """Selectors and rate ranges of a PromQL expression. A tokenizer, not a parser: enough to
    find every vector selector and which function a range belongs to; Prometheus itself
    judges the syntax (the queries run against a real one in the tests)."""
    tokens: list[tuple[str | None, str]] = [
        (m.lastgroup, m.group()) for m in _TOKEN.finditer(expr) if m.lastgroup
    ]
    selectors: list[Selector] = []
    ranges: list[str] = []
    calls: list[str] = []  # the function (or "") each open parenthesis belongs to
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else (None, "")
        if kind == "ident" and text in _GROUPING and following[0] == "open":
            i = _after_group(tokens, i + 1)
            continue
        if kind == "ident" and text in _AGGREGATIONS and following[0] == "ident":
            i += 1  # `sum by (...) (...)`: the grouping follows, then the argument
            continue
        if kind == "ident" and text not in _KEYWORDS:
            if following[0] == "open":
                calls.append(text)
                i += 2
                continue
            braces = following[1] if following[0] == "braces" else "{}"
            selectors.append(Selector(text, _matchers(braces)))
            i += 2 if following[0] == "braces" else 1
            continue
        if kind == "braces":
            selectors.append(Selector(None, _matchers(text)))
        elif kind == "open":
            calls.append("")
        elif kind == "close" and calls:
            calls.pop()
        elif kind == "range" and calls and calls[-1] in RATE_FUNCTIONS:
            ranges.append(text[1:-1].strip())
        i += 1
    return ParsedQuery(tuple(selectors), tuple(ranges))


def _after_group(tokens: list[tuple[str | None, str]], start: int) -> int:
    depth = 0
    for j in range(start, len(tokens)):
        kind = tokens[j][0]
        depth += kind == "open"
        depth -= kind == "close"
        if depth == 0:
            return j + 1
    return len(tokens)


def _matchers(braces: str) -> tuple[str, ...]:
    return tuple(f'{label}{op}"{value}"' for label, op, value in _MATCHER.findall(braces))


def query_problems(expr: str) -> list[str]:
    """What is wrong with one panel query (empty when nothing)."""
    parsed = parse(expr)
    problems = [
        f"rate over [{r}] instead of [{RATE_INTERVAL}]"
        for r in parsed.rate_ranges
        if r != RATE_INTERVAL
    ]
    if re.search(r"\b(?:i?rate|increase)\s*\(", expr) and not parsed.rate_ranges:
        problems.append("rate()/increase() without a range")
    if not parsed.selectors:
        problems.append("no series selector (a constant panel)")
    for s in parsed.selectors:
        name = s.metric or "{...}"
        if JOB_MATCHER not in s.matchers:
            problems.append(f"{name} does not filter on {JOB_MATCHER}")
        per_instance = s.metric is not None and ":" not in s.metric
        if per_instance and s.metric not in JOB_LEVEL_SERIES and INSTANCE_MATCHER not in s.matchers:
            problems.append(f"{name} does not filter on {INSTANCE_MATCHER}")
    return problems


def lint(dashboards: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every problem of every dashboard; links are resolved within `dashboards` (by uid)."""
    problems: list[str] = []
    for uid, dashboard in dashboards.items():
        problems += [f"{uid}: {p}" for p in _dashboard_problems(dashboard, dashboards)]
    return problems


def _dashboard_problems(
    dashboard: Mapping[str, Any], dashboards: Mapping[str, Mapping[str, Any]]
) -> Iterator[str]:
    if DASHBOARD_TAG not in dashboard.get("tags", []):
        yield f"not tagged {DASHBOARD_TAG!r}"
    if not dashboard.get("title"):
        yield "no title"
    variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
    yield from _variable_problems(variables)
    datasource_default = variables.get(DATASOURCE_VARIABLE, {}).get("current", {}).get("value")
    for name, variable in variables.items():
        if "datasource" in variable:
            problems = _datasource_problems(variable["datasource"], datasource_default)
            yield from (f"variable {name!r}: {p}" for p in problems)
    for link in dashboard.get("links", []):
        yield from (f"dashboard link: {p}" for p in _link_problems(link, dashboards))
    ids = Counter(p.get("id") for p in _all_panels(dashboard))
    yield from (f"panel id {i} used {n} times" for i, n in ids.items() if n > 1)
    for panel in iter_panels(dashboard):
        where = f"panel {panel.get('title')!r}"
        yield from (f"{where}: {p}" for p in _panel_problems(panel, dashboards, datasource_default))


def _all_panels(dashboard: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def _variable_problems(variables: Mapping[str, Mapping[str, Any]]) -> Iterator[str]:
    source = variables.get(DATASOURCE_VARIABLE)
    if (
        source is None
        or source.get("type") != "datasource"
        or source.get("query") != PROMETHEUS_TYPE
    ):
        yield f"no {DATASOURCE_VARIABLE!r} variable of Prometheus datasources"
    elif source.get("current", {}).get("value") != PROMETHEUS_UID:
        yield f"the {DATASOURCE_VARIABLE!r} variable does not default to {PROMETHEUS_UID!r}"
    for name in ("job", "instance"):
        if name not in variables:
            yield f"no {name!r} variable"


def _resolve_uid(uid: str, datasource_default: str | None) -> str | None:
    if uid in (f"${DATASOURCE_VARIABLE}", f"${{{DATASOURCE_VARIABLE}}}"):
        return datasource_default
    return uid


def _datasource_problems(
    datasource: Mapping[str, Any], datasource_default: str | None
) -> Iterator[str]:
    uid = _resolve_uid(str(datasource.get("uid", "")), datasource_default)
    if uid not in PROVISIONED_UIDS:
        yield f"datasource uid {datasource.get('uid')!r} is not one of {sorted(PROVISIONED_UIDS)}"
    elif datasource.get("type") != DATASOURCE_TYPES[uid]:
        yield f"datasource {uid!r} has type {datasource.get('type')!r}"


def _panel_problems(
    panel: Mapping[str, Any],
    dashboards: Mapping[str, Mapping[str, Any]],
    datasource_default: str | None,
) -> Iterator[str]:
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    if not panel.get("title"):
        yield "no title"
    if not panel.get("description"):
        yield "no description"
    if not defaults.get("unit"):
        yield "no unit"
    if not panel.get("datasource"):
        yield "no datasource"
    else:
        yield from _datasource_problems(panel["datasource"], datasource_default)
    targets = panel.get("targets", [])
    if not targets:
        yield "no query"
    ref_ids = Counter(t.get("refId") for t in targets)
    yield from (f"refId {r!r} used {n} times" for r, n in ref_ids.items() if n > 1)
    for target in targets:
        datasource = target_datasource(panel, target)
        if "datasource" in target:
            yield from _datasource_problems(target["datasource"], datasource_default)
        if datasource.get("type") == PROMETHEUS_TYPE:
            expr = target.get("expr", "")
            yield from (f"{target.get('refId')}: {p}" for p in query_problems(expr))
            latency = (
                "histogram_quantile(" in expr
                and "http_server_request_duration_seconds_bucket" in expr
            )
            if latency and not target.get("exemplar"):
                yield f"{target.get('refId')}: latency without exemplars"
    yield from _threshold_problems(panel, defaults)
    for link in panel.get("links", []):
        yield from (f"link: {p}" for p in _link_problems(link, dashboards))


def _threshold_problems(panel: Mapping[str, Any], defaults: Mapping[str, Any]) -> Iterator[str]:
    steps = defaults.get("thresholds", {}).get("steps", [])
    drawn = {float(s["value"]) for s in steps if s.get("value") is not None}
    for value in sorted(drawn - _LEVEL_VALUES):
        yield f"threshold {value:g} is not an alert threshold of telemetry/thresholds.py"
    for link in panel.get("links", []):
        alert = _runbook_alert(str(link.get("url", "")))
        if alert is None or alert.alert in _UNDRAWN:
            continue
        if alert.value not in drawn:
            yield f"links {alert.alert} but draws no threshold at {alert.value:g}"
        if defaults.get("unit") != alert.unit.value:
            yield f"unit {defaults.get('unit')!r}, but {alert.alert} is in {alert.unit.value!r}"


def _runbook_alert(url: str) -> Threshold | None:
    base, _, anchor = url.partition("#")
    return _BY_ANCHOR.get(anchor) if base == RUNBOOK_BASE_URL else None


def _link_problems(
    link: Mapping[str, Any], dashboards: Mapping[str, Mapping[str, Any]]
) -> Iterator[str]:
    if link.get("type") == "dashboards":
        tags = set(link.get("tags", []))
        if not any(tags <= set(d.get("tags", [])) for d in dashboards.values()):
            yield f"no dashboard has the tags {sorted(tags)}"
        return
    url = str(link.get("url", ""))
    target = _DASHBOARD_URL.match(url)
    if target is not None:
        if target.group(1) not in dashboards:
            yield f"{url} points at no dashboard"
    elif url.startswith(RUNBOOK_BASE_URL):
        anchor = url.partition("#")[2]
        if anchor and anchor not in _BY_ANCHOR:
            yield f"{url} points at no runbook section"
    else:
        yield f"{url!r} is neither a dashboard nor a runbook"
