"""One PNG per dashboard, drawn with matplotlib (Agg: no display, no GUI toolkit).

Each panel is drawn where its `gridPos` puts it (see preview_layout), in Grafana's dark colours,
so the picture reads like the dashboard: time series as lines with a legend and dashed lines at
the panel's thresholds (the steps with a value: the base step is a colour, not a line), stats as
big numbers in the colour of the threshold step they fall in, tables as text rows, and panels that
need Grafana itself (Tempo traces, alert lists) as a labelled box that says so.
"""

from __future__ import annotations

import math
import re
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import matplotlib

matplotlib.use("Agg")

from matplotlib import colors as mcolors
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, MaxNLocator, MultipleLocator
from matplotlib.transforms import blended_transform_factory

from dashboards.preview_data import PanelData, PanelKind, QueryWindow
from dashboards.preview_layout import GRID_COLUMNS, Placed, height, layout
from dashboards.preview_units import format_value

FIGURE_WIDTH: Final = 20.0
"""Inches; at DPI that is 1800 px, about a Grafana dashboard on a laptop screen."""
GRID_UNIT_HEIGHT: Final = 0.34
"""Inches per gridPos height unit (Grafana: 30 px plus margin at ~24 px per column unit)."""
DPI: Final = 90
HEADER: Final = 0.75
GAP: Final = 0.05
PANEL_TITLE: Final = 0.3
MAX_LEGEND_ENTRIES: Final = 8
MAX_STATS: Final = 6
BINARY_UNITS: Final = frozenset({"bytes", "binBps"})
TIME_TICKS: Final = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400)

BACKGROUND: Final = "#111217"
PANEL: Final = "#181b1f"
BORDER: Final = "#2c3235"
TEXT: Final = "#ccccdc"
MUTED: Final = "#8e8e9e"
ERROR: Final = "#f2495c"
PALETTE: Final = (
    "#73bf69",
    "#f2cc0c",
    "#8ab8ff",
    "#ff780a",
    "#f2495c",
    "#5794f2",
    "#b877d9",
    "#705da0",
    "#37872d",
    "#fade2a",
)
GRAFANA_COLORS: Final[Mapping[str, str]] = {
    "green": "#73bf69",
    "red": "#f2495c",
    "orange": "#ff9830",
    "yellow": "#fade2a",
    "blue": "#5794f2",
    "purple": "#b877d9",
    "text": TEXT,
}
_SHADES: Final = re.compile(r"^(super-light|light|semi-dark|dark)-")
_LEGEND_LABEL: Final = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")


def grafana_color(name: str | None) -> str:
    """A matplotlib colour for a Grafana colour name (`green`, `dark-red`, `#ff0000`)."""
    if not name:
        return GRAFANA_COLORS["green"]
    base = _SHADES.sub("", name)
    if base in GRAFANA_COLORS:
        return GRAFANA_COLORS[base]
    return name if mcolors.is_color_like(name) else MUTED


def legend_label(legend_format: str, labels: Mapping[str, str], fallback: str) -> str:
    """The series' name as Grafana writes it: `{{route}}` filled from the labels; with no
    format, the labels themselves, or `fallback` (the query) when there are none."""
    if legend_format and legend_format != "__auto":
        return _LEGEND_LABEL.sub(lambda m: labels.get(m.group(1), ""), legend_format)
    shown = {k: v for k, v in labels.items() if k != "__name__"}
    if shown:
        inner = ", ".join(f'{k}="{v}"' for k, v in sorted(shown.items()))
        return f"{labels.get('__name__', '')}{{{inner}}}"
    return labels.get("__name__", fallback)


def threshold_steps(panel: Mapping[str, Any]) -> list[tuple[float | None, str]]:
    defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
    steps = (defaults.get("thresholds") or {}).get("steps") or []
    return [
        (None if s.get("value") is None else float(s["value"]), grafana_color(s.get("color")))
        for s in steps
    ]


def _unit(panel: Mapping[str, Any]) -> str:
    defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
    return str(defaults.get("unit") or "")


def _no_value(panel: Mapping[str, Any]) -> str:
    """What Grafana writes on a panel without data: the panel's `noValue`, else "No data"."""
    defaults = (panel.get("fieldConfig") or {}).get("defaults") or {}
    return str(defaults.get("noValue") or "No data")


def _step_color(value: float, steps: Sequence[tuple[float | None, str]]) -> str:
    color = GRAFANA_COLORS["green"]
    for threshold, step_color in steps:
        if threshold is None or value >= threshold:
            color = step_color
    return color


# ---------------------------------------------------------------------- figure
class _Canvas:
    """Converts grid positions to figure fractions."""

    def __init__(self, rows: int) -> None:
        self.height = HEADER + rows * GRID_UNIT_HEIGHT + GAP
        self.figure = Figure(figsize=(FIGURE_WIDTH, self.height), dpi=DPI, facecolor=BACKGROUND)

    def inches(self, place: Placed) -> tuple[float, float, float, float]:
        """left, top (from the figure's top), width, height of the cell, in inches."""
        column = FIGURE_WIDTH / GRID_COLUMNS
        return (
            place.x * column + GAP,
            HEADER + place.y * GRID_UNIT_HEIGHT + GAP,
            place.w * column - 2 * GAP,
            place.h * GRID_UNIT_HEIGHT - 2 * GAP,
        )

    def rect(
        self, left: float, top: float, width: float, height: float
    ) -> tuple[float, float, float, float]:
        """Inches (top measured downwards) to a figure-fraction [left, bottom, width, height]."""
        return (
            left / FIGURE_WIDTH,
            1 - (top + height) / self.height,
            max(width, 0.01) / FIGURE_WIDTH,
            max(height, 0.01) / self.height,
        )

    def text(self, left: float, top: float, text: str, **style: Any) -> None:
        # parse_math off: `$job` in a title is text, not the start of a formula.
        self.figure.text(
            left / FIGURE_WIDTH, 1 - top / self.height, text, parse_math=False, **style
        )


def render_dashboard(
    dashboard: Mapping[str, Any],
    data: Iterable[PanelData],
    window: QueryWindow,
    out: Path,
    *,
    source: str = "",
) -> Path:
    """Draw `dashboard` with the fetched `data` (matched to its panels by identity) to `out`."""
    by_panel = {id(d.panel): d for d in data}
    placed = layout(dashboard)
    canvas = _Canvas(height(placed))
    _header(canvas, dashboard, window, source)
    for place in placed:
        if place.is_row:
            _row(canvas, place)
            continue
        panel_data = by_panel.get(id(place.panel))
        _panel(canvas, place, panel_data, window)
    out.parent.mkdir(parents=True, exist_ok=True)
    canvas.figure.savefig(out, format="png", facecolor=BACKGROUND)
    return out


def _header(
    canvas: _Canvas, dashboard: Mapping[str, Any], window: QueryWindow, source: str
) -> None:
    title = str(dashboard.get("title") or dashboard.get("uid") or "dashboard")
    end = datetime.fromtimestamp(window.stop, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    variables = window.variables()
    subtitle = (
        f"last {variables['__range']} to {end}  ·  $__interval {variables['__interval']}  ·  "
        f"$__rate_interval {variables['__rate_interval']}  ·  scrape interval "
        f"{window.scrape_interval:g}s" + (f"  ·  {source}" if source else "")
    )
    canvas.text(0.15, 0.12, title, color=TEXT, fontsize=17, weight="bold", va="top")
    canvas.text(0.15, 0.48, subtitle, color=MUTED, fontsize=9.5, va="top")


def _row(canvas: _Canvas, place: Placed) -> None:
    left, top, _, _ = canvas.inches(place)
    title = str(place.panel.get("title", ""))
    canvas.text(left, top + 0.08, title, color=TEXT, fontsize=12, weight="bold", va="top")


def _panel(canvas: _Canvas, place: Placed, data: PanelData | None, window: QueryWindow) -> None:
    left, top, width, height_in = canvas.inches(place)
    figure = canvas.figure
    figure.add_artist(
        Rectangle(
            canvas.rect(left, top, width, height_in)[:2],
            width / FIGURE_WIDTH,
            height_in / canvas.height,
            transform=figure.transFigure,
            facecolor=PANEL,
            edgecolor=BORDER,
            linewidth=0.8,
            zorder=0,
        )
    )
    title = str(place.panel.get("title", ""))
    max_chars = max(int(width * 11), 8)
    if len(title) > max_chars:
        title = title[: max_chars - 1] + "…"
    canvas.text(left + 0.1, top + 0.07, title, color=TEXT, fontsize=10, weight="bold", va="top")
    body = (left, top + PANEL_TITLE, width, height_in - PANEL_TITLE)
    if data is None:
        _message(canvas, body, "not fetched", MUTED)
        return
    if data.kind is PanelKind.TIMESERIES:
        _timeseries(canvas, body, data, window)
    elif data.kind is PanelKind.STAT:
        _stat(canvas, body, data)
    elif data.kind is PanelKind.TABLE:
        _table(canvas, body, data)
    elif data.kind is PanelKind.TRACES:
        _needs_grafana(canvas, body, data, "Traces: needs Grafana + Tempo")
    elif data.kind is PanelKind.TEXT:
        content = str((data.panel.get("options") or {}).get("content", ""))
        _message(canvas, body, _wrap(content, body[2]), TEXT, fontsize=9, align="left")
    else:
        kind = str(data.panel.get("type", "?"))
        _needs_grafana(canvas, body, data, f"{kind} panel: needs Grafana")


def _wrap(text: str, width_in: float) -> str:
    columns = max(int(width_in * 13), 10)
    lines = [textwrap.fill(line, columns) for line in text.strip().splitlines() if line.strip()]
    return "\n".join(lines[:12])


def _message(
    canvas: _Canvas,
    body: tuple[float, float, float, float],
    text: str,
    color: str,
    *,
    fontsize: float = 11,
    align: str = "center",
) -> None:
    left, top, width, height_in = body
    x = left + width / 2 if align == "center" else left + 0.12
    canvas.text(x, top + height_in / 2, text, color=color, fontsize=fontsize, ha=align, va="center")


def _errors(data: PanelData) -> list[str]:
    return [f"{r.ref_id}: {r.error}" for r in data.results if r.error]


def _show_errors(canvas: _Canvas, body: tuple[float, float, float, float], data: PanelData) -> bool:
    errors = _errors(data)
    if errors and data.series_count == 0:
        _message(canvas, body, _wrap("\n".join(errors), body[2]), ERROR, fontsize=8)
        return True
    return False


def _needs_grafana(
    canvas: _Canvas, body: tuple[float, float, float, float], data: PanelData, label: str
) -> None:
    left, top, width, height_in = body
    inset = (left + 0.15, top + 0.05, width - 0.3, height_in - 0.2)
    canvas.figure.add_artist(
        Rectangle(
            canvas.rect(*inset)[:2],
            inset[2] / FIGURE_WIDTH,
            inset[3] / canvas.height,
            transform=canvas.figure.transFigure,
            facecolor="none",
            edgecolor=MUTED,
            linestyle="--",
            linewidth=1.0,
        )
    )
    queries = [str(t.get("query") or t.get("expr") or "") for t in data.panel.get("targets", [])]
    detail = _wrap("\n".join(q for q in queries if q), inset[2])
    canvas.text(
        left + width / 2,
        top + height_in / 2 - 0.15,
        label,
        color=TEXT,
        fontsize=12,
        weight="bold",
        ha="center",
        va="center",
    )
    if detail:
        canvas.text(
            left + width / 2,
            top + height_in / 2 + 0.2,
            detail,
            color=MUTED,
            fontsize=8.5,
            family="monospace",
            ha="center",
            va="top",
        )


# ---------------------------------------------------------------------- time series
def _timeseries(
    canvas: _Canvas, body: tuple[float, float, float, float], data: PanelData, window: QueryWindow
) -> None:
    if _show_errors(canvas, body, data):
        return
    left, top, width, height_in = body
    axes = canvas.figure.add_axes(
        canvas.rect(left + 0.75, top + 0.05, width - 0.95, height_in - 0.4)
    )
    _style_axes(axes)
    unit = _unit(data.panel)
    lines = 0
    every_value: list[float] = []
    for result in data.results:
        for series in result.series:
            label = legend_label(result.legend_format, series.labels, result.expr)
            axes.plot(
                series.timestamps,
                series.values,
                color=PALETTE[lines % len(PALETTE)],
                linewidth=1.4,
                # Legend entries are parsed as mathtext: a `$` must stay a dollar sign.
                label=label.replace("$", r"\$") if lines < MAX_LEGEND_ENTRIES else None,
            )
            every_value.extend(v for v in series.values if math.isfinite(v))
            lines += 1
    axes.set_xlim(window.start, window.stop)
    for threshold, color in threshold_steps(data.panel):
        if threshold is None:
            continue
        axes.axhline(threshold, color=color, linestyle="--", linewidth=1.4)
        axes.text(
            1.0,
            threshold,
            f"{format_value(threshold, unit)} ",
            transform=blended_transform_factory(axes.transAxes, axes.transData),
            color=color,
            fontsize=7.5,
            ha="right",
            va="bottom",
            parse_math=False,
        )
    if not every_value or max(map(abs, every_value)) == 0:
        # Nothing but zeros (or NaN): an axis from 0 to 1 or past the highest threshold, not a
        # zoom into rounding noise.
        marks = [t for t, _ in threshold_steps(data.panel) if t is not None and t > 0]
        axes.set_ylim(0, max([1.0, *(1.1 * m for m in marks)]))
    elif min(every_value) >= 0:
        axes.set_ylim(bottom=0)
    axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: format_value(v, unit)))
    most = max(int(height_in * 1.6), 3)
    if unit in BINARY_UNITS:
        low, high = axes.get_ylim()
        axes.yaxis.set_major_locator(MultipleLocator(_binary_step(high - low, most)))
    else:
        axes.yaxis.set_major_locator(MaxNLocator(nbins=most))
    tick = _time_tick(window.range_seconds, min(max(int(width * 0.9), 3), 10))
    axes.xaxis.set_major_locator(MultipleLocator(tick))
    clock = "%H:%M:%S" if tick < 60 else "%H:%M"
    axes.xaxis.set_major_formatter(
        FuncFormatter(lambda v, _pos: datetime.fromtimestamp(v, UTC).strftime(clock))
    )
    if not every_value:
        # No series, or only NaN points (a quantile of an empty window): nothing to see.
        axes.text(
            0.5,
            0.5,
            _no_value(data.panel),
            transform=axes.transAxes,
            color=MUTED,
            ha="center",
            va="center",
            parse_math=False,
        )
    if lines == 0:
        return
    extra = lines - MAX_LEGEND_ENTRIES
    legend = axes.legend(
        loc="best",
        fontsize=7,
        ncol=2 if lines > 3 and width > 5 else 1,
        frameon=True,
        framealpha=0.75,
        facecolor=PANEL,
        edgecolor=BORDER,
        labelcolor=TEXT,
        title=f"+{extra} more series" if extra > 0 else None,
        title_fontsize=7,
    )
    legend.get_title().set_color(MUTED)


def _binary_step(span: float, most: int) -> float:
    """The smallest power of two giving at most `most` ticks over `span`: byte axes read
    64 MiB, 128 MiB, not 57.2 MiB, 114 MiB."""
    step = 1.0
    while span / step > most:
        step *= 2
    return step


def _time_tick(range_seconds: float, most: int) -> float:
    """The shortest round clock step (10 s, 1 min, 5 min, 1 h...) giving at most `most` ticks."""
    for step in TIME_TICKS:
        if range_seconds / step <= most:
            return step
    return TIME_TICKS[-1]


def _style_axes(axes: Axes) -> None:
    axes.set_facecolor(PANEL)
    for spine in axes.spines.values():
        spine.set_color(BORDER)
    axes.tick_params(colors=MUTED, labelsize=7.5)
    axes.grid(True, color=BORDER, linewidth=0.6)


# ---------------------------------------------------------------------- stat and table
def _values(data: PanelData) -> list[tuple[str, float]]:
    return [
        (legend_label(r.legend_format, s.labels, ""), s.last)
        for r in data.results
        for s in r.series
        if s.values
    ]


def _stat(canvas: _Canvas, body: tuple[float, float, float, float], data: PanelData) -> None:
    if _show_errors(canvas, body, data):
        return
    values = _values(data)
    if not values:
        _message(canvas, body, _no_value(data.panel), MUTED, fontsize=13)
        return
    left, top, width, height_in = body
    unit = _unit(data.panel)
    steps = threshold_steps(data.panel)
    shown = values[:MAX_STATS]
    cell = width / len(shown)
    labelled = len(shown) > 1
    for index, (label, value) in enumerate(shown):
        text = format_value(value, unit)
        size = min(height_in * (40 if not labelled else 30), cell * 95 / max(len(text), 3), 40)
        centre = left + cell * (index + 0.5)
        middle = top + height_in * (0.42 if labelled else 0.5)
        canvas.text(
            centre,
            middle,
            text,
            color=_step_color(value, steps),
            fontsize=max(size, 9),
            weight="bold",
            ha="center",
            va="center",
        )
        if labelled:
            short = label if len(label) <= cell * 12 else label[: int(cell * 12) - 1] + "…"
            canvas.text(centre, top + height_in * 0.85, short, color=MUTED, fontsize=8, ha="center")
    if len(values) > len(shown):
        canvas.text(
            left + width - 0.1,
            top - 0.2,
            f"+{len(values) - len(shown)} more",
            color=MUTED,
            fontsize=8,
            ha="right",
        )


def _table(canvas: _Canvas, body: tuple[float, float, float, float], data: PanelData) -> None:
    if _show_errors(canvas, body, data):
        return
    rows: list[tuple[Mapping[str, str], float]] = [
        (s.labels, s.last) for r in data.results for s in r.series if s.values
    ]
    if not rows:
        _message(canvas, body, _no_value(data.panel), MUTED, fontsize=13)
        return
    left, top, width, height_in = body
    unit = _unit(data.panel)
    keys = sorted({k for labels, _ in rows for k in labels if k != "__name__"})
    if len(rows) > 1:
        # Labels equal in every row say nothing about any row.
        keys = [k for k in keys if len({labels.get(k, "") for labels, _ in rows}) > 1]
    header = [*keys, "Value"]
    cells = [[labels.get(k, "") for k in keys] + [format_value(v, unit)] for labels, v in rows]
    rows_fit = max(int((height_in - 0.35) / 0.2), 1)
    widths = [max(len(row[i]) for row in [header, *cells]) for i in range(len(header))]
    chars = max(int((width - 0.2) * 14), 20)
    while sum(widths) + 2 * len(widths) > chars and max(widths) > 8:
        widest = widths.index(max(widths))
        widths[widest] -= 1

    def line(values: Sequence[str]) -> str:
        return "  ".join(_fit(v, w).ljust(w) for v, w in zip(values, widths, strict=True))

    canvas.text(
        left + 0.12,
        top + 0.05,
        line(header),
        color=TEXT,
        fontsize=8.5,
        family="monospace",
        weight="bold",
        va="top",
    )
    shown = cells[:rows_fit]
    if len(cells) > rows_fit:
        shown = cells[: rows_fit - 1]
    for index, row in enumerate(shown):
        canvas.text(
            left + 0.12,
            top + 0.27 + index * 0.2,
            line(row),
            color=TEXT,
            fontsize=8.5,
            family="monospace",
            va="top",
        )
    if len(cells) > len(shown):
        canvas.text(
            left + 0.12,
            top + 0.27 + len(shown) * 0.2,
            f"… {len(cells) - len(shown)} more rows",
            color=MUTED,
            fontsize=8.5,
            va="top",
        )


def _fit(value: str, width: int) -> str:
    return value if len(value) <= width else value[: max(width - 1, 1)] + "…"
