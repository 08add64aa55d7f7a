"""Panels go where their gridPos says; collapsed rows open and push what follows down."""

from __future__ import annotations

from typing import Any

from dashboards.preview_layout import height, layout


def panel(title: str, x: int, y: int, w: int, h: int) -> dict[str, Any]:
    return {"type": "timeseries", "title": title, "gridPos": {"x": x, "y": y, "w": w, "h": h}}


def positions(dashboard: dict[str, Any]) -> list[tuple[str, int, int, int, int]]:
    return [(p.panel["title"], p.x, p.y, p.w, p.h) for p in layout(dashboard)]


def test_open_dashboard_keeps_its_grid_sorted_top_to_bottom() -> None:
    dashboard = {"panels": [panel("right", 12, 0, 12, 8), panel("left", 0, 0, 12, 8)]}
    assert positions(dashboard) == [("left", 0, 0, 12, 8), ("right", 12, 0, 12, 8)]


def test_a_collapsed_row_opens_and_moves_the_rest_down() -> None:
    folded = {
        "type": "row",
        "title": "Folded",
        "collapsed": True,
        "gridPos": {"x": 0, "y": 8, "w": 24, "h": 1},
        # Positions saved while the row was open further down the page.
        "panels": [panel("a", 0, 40, 12, 6), panel("b", 12, 40, 12, 9)],
    }
    below = {"type": "row", "title": "Below", "gridPos": {"x": 0, "y": 9, "w": 24, "h": 1}}
    dashboard = {"panels": [panel("top", 0, 0, 24, 8), folded, below, panel("last", 0, 10, 6, 4)]}
    assert positions(dashboard) == [
        ("top", 0, 0, 24, 8),
        ("Folded", 0, 8, 24, 1),
        ("a", 0, 9, 12, 6),
        ("b", 12, 9, 12, 9),
        ("Below", 0, 18, 24, 1),
        ("last", 0, 19, 6, 4),
    ]
    assert height(layout(dashboard)) == 23


def test_out_of_grid_positions_are_clamped() -> None:
    dashboard = {"panels": [panel("wide", 20, 0, 12, 0), {"type": "stat", "title": "bare"}]}
    assert positions(dashboard) == [("bare", 0, 0, 12, 8), ("wide", 20, 0, 4, 1)]
