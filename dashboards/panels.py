"""Panel builders that make the dashboard rules hard to break.

Each one requires a title, a description and a unit, queries the `$datasource` variable, and
takes its threshold lines from `telemetry.thresholds`: passing an alert draws the line at the
alert's value, in the alert's severity colour, and adds a link to its runbook section, so the
number on a dashboard is always the number that pages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TypeVar

from grafana_foundation_sdk.builders import common as common_builders
from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.builders import (
    prometheus,
    stat,
    statetimeline,
    table,
    tempo,
    timeseries,
)
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as models
from grafana_foundation_sdk.models import prometheus as prometheus_models
from grafana_foundation_sdk.models import tempo as tempo_models

from dashboards.datasources import TEMPO_TYPE, TEMPO_UID
from dashboards.links import runbook_link
from dashboards.variables import PROMETHEUS
from telemetry.thresholds import Comparison, Severity, Threshold

OK_COLOUR: Final = "green"
SEVERITY_COLOURS: Final = {
    Severity.CRITICAL: "red",
    Severity.WARNING: "orange",
    Severity.INFO: "yellow",
}

Panel = TypeVar("Panel", timeseries.Panel, stat.Panel, table.Panel, statetimeline.Panel)


def query(
    expr: str,
    legend: str = "__auto",
    *,
    exemplar: bool = False,
    instant: bool = False,
    as_table: bool = False,
) -> prometheus.Dataquery:
    """A Prometheus target; its refId is set by the panel it is added to."""
    target = prometheus.Dataquery().expr(expr).legend_format(legend).datasource(PROMETHEUS).range()
    if exemplar:
        target = target.exemplar(True)
    if instant:
        target = target.instant()
    if as_table:
        target = target.format(prometheus_models.PromQueryFormat.TABLE)
    return target


def alert_thresholds(alerts: Sequence[Threshold]) -> builders.ThresholdsConfig:
    """Colour steps at each alert's value: past the line in the severity colour, on the good
    side in green. A lower bound (`<`) is bad below its value, an upper bound bad above it."""
    steps = [models.Threshold(value=None, color=OK_COLOUR)]
    for alert in sorted(alerts, key=lambda a: a.value):
        colour = SEVERITY_COLOURS[alert.severity]
        if alert.condition.op is Comparison.LT:
            steps[-1].color = colour
            steps.append(models.Threshold(value=alert.value, color=OK_COLOUR))
        else:
            steps.append(models.Threshold(value=alert.value, color=colour))
    return builders.ThresholdsConfig().mode(models.ThresholdsMode.ABSOLUTE).steps(steps)


def _dress(
    panel: Panel,
    title: str,
    description: str,
    unit: str,
    targets: Sequence[prometheus.Dataquery],
    alerts: Sequence[Threshold],
    links: Sequence[builders.DashboardLink],
    size: tuple[int, int],
) -> Panel:
    width, height = size
    panel = (
        panel.title(title)
        .description(description)
        .unit(unit)
        .datasource(PROMETHEUS)
        .targets([t.ref_id(chr(ord("A") + i)) for i, t in enumerate(targets)])
        .thresholds(alert_thresholds(alerts))
        .span(width)
        .height(height)
    )
    every_link: list[cogbuilder.Builder[models.DashboardLink]] = [runbook_link(a) for a in alerts]
    every_link += links
    if every_link:
        panel = panel.links(every_link)
    return panel


def time_series(
    title: str,
    description: str,
    unit: str,
    targets: Sequence[prometheus.Dataquery],
    *,
    alerts: Sequence[Threshold] = (),
    links: Sequence[builders.DashboardLink] = (),
    size: tuple[int, int] = (12, 8),
    stacked: bool = False,
    soft_max: float | None = None,
    no_value: str | None = None,
) -> timeseries.Panel:
    """`no_value` replaces Grafana's "No data" for series that exist only once something
    happened (a fallback, a 5xx): there, no data is the good news and should read so."""
    panel = (
        timeseries.Panel()
        .line_width(1)
        .fill_opacity(10)
        .show_points(common.VisibilityMode.NEVER)
        .min(0)
        .legend(
            common_builders.VizLegendOptions()
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .show_legend(True)
            .calcs(["mean", "max", "lastNotNull"])
        )
        .tooltip(
            common_builders.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
    )
    if alerts:
        panel = panel.thresholds_style(
            common_builders.GraphThresholdsStyleConfig().mode(
                common.GraphThresholdsStyleMode.DASHED
            )
        )
    if stacked:
        panel = panel.stacking(
            common_builders.StackingConfig().mode(common.StackingMode.NORMAL)
        ).fill_opacity(40)
    if soft_max is not None:
        panel = panel.axis_soft_max(soft_max)
    if no_value is not None:
        panel = panel.no_value(no_value)
    return _dress(panel, title, description, unit, targets, alerts, links, size)


def single_stat(
    title: str,
    description: str,
    unit: str,
    targets: Sequence[prometheus.Dataquery],
    *,
    alerts: Sequence[Threshold] = (),
    links: Sequence[builders.DashboardLink] = (),
    size: tuple[int, int] = (6, 4),
    mappings: Sequence[models.ValueMapping] = (),
    colour: str | None = None,
) -> stat.Panel:
    """`colour`, when set, colours every value the mappings and thresholds leave alone."""
    panel = (
        stat.Panel()
        .graph_mode(common.BigValueGraphMode.AREA)
        .color_mode(common.BigValueColorMode.VALUE)
        .reduce_options(common_builders.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if mappings:
        panel = panel.mappings(list(mappings))
    if colour is not None:
        panel = panel.color_scheme(
            builders.FieldColor().mode(models.FieldColorModeId.FIXED).fixed_color(colour)
        )
    return _dress(panel, title, description, unit, targets, alerts, links, size)


def state_timeline(
    title: str,
    description: str,
    unit: str,
    targets: Sequence[prometheus.Dataquery],
    *,
    mappings: Sequence[models.ValueMapping],
    links: Sequence[builders.DashboardLink] = (),
    size: tuple[int, int] = (12, 8),
) -> statetimeline.Panel:
    panel = statetimeline.Panel().mappings(list(mappings))
    return _dress(panel, title, description, unit, targets, (), links, size)


def prometheus_table(
    title: str,
    description: str,
    unit: str,
    targets: Sequence[prometheus.Dataquery],
    *,
    hidden_columns: Sequence[str] = (),
    links: Sequence[builders.DashboardLink] = (),
    size: tuple[int, int] = (12, 8),
    no_value: str | None = None,
) -> table.Panel:
    panel = table.Panel()
    for column in hidden_columns:
        panel = panel.override_by_name(
            column, [models.DynamicConfigValue(id_val="custom.hidden", value=True)]
        )
    if no_value is not None:
        panel = panel.no_value(no_value)
    return _dress(panel, title, description, unit, targets, (), links, size)


def value_mapping(texts: dict[int, tuple[str, str]]) -> models.ValueMap:
    """Numbers shown as words in colours, e.g. a state gauge: {0: ("closed", "green")}."""
    return models.ValueMap(
        options={
            str(value): models.ValueMappingResult(text=text, color=colour, index=i)
            for i, (value, (text, colour)) in enumerate(sorted(texts.items()))
        }
    )


def trace_table(
    title: str,
    description: str,
    traceql: str,
    *,
    limit: int,
    links: Sequence[builders.DashboardLink] = (),
    size: tuple[int, int] = (24, 12),
) -> table.Panel:
    """A Tempo search as a table, one row per trace, longest first.

    Grafana's Tempo datasource gives the `traceID` column an internal link to the trace view,
    so each row opens its trace; the column is therefore kept visible. Durations come in
    milliseconds (the unit Tempo reports; time columns keep their date format).
    """
    tempo_source = models.DataSourceRef(type_val=TEMPO_TYPE, uid=TEMPO_UID)
    target = (
        tempo.TempoQuery()
        .ref_id("A")
        .datasource(tempo_source)
        .query_type("traceql")
        .query(traceql)
        .limit(limit)
        .table_type(tempo_models.SearchTableType.TRACES)
    )
    panel = (
        table.Panel()
        .title(title)
        .description(description)
        .unit("ms")
        .datasource(tempo_source)
        .with_target(target)
        .sort_by([common_builders.TableSortByFieldState().display_name("Duration").desc(True)])
        .span(size[0])
        .height(size[1])
    )
    if links:
        panel = panel.links(list[cogbuilder.Builder[models.DashboardLink]](links))
    return panel
