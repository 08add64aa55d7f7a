"""Where each panel goes: Grafana's 24-column grid, rows expanded.

A dashboard's `gridPos` already is the layout (x and w in 24ths of the width, y and h in grid
units of about 30 px), except for collapsed rows: their panels sit inside the row with the
positions they had when it was last open, and the panels below the row are placed as if it were
shut. The preview shows everything, so each collapsed row is opened as Grafana opens it: its
panels go right under it, and whatever follows moves down by their height.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

GRID_COLUMNS: Final = 24


@dataclass(frozen=True, slots=True)
class Placed:
    panel: Mapping[str, Any]
    x: int
    y: int
    w: int
    h: int

    @property
    def is_row(self) -> bool:
        return self.panel.get("type") == "row"


def _grid(panel: Mapping[str, Any]) -> tuple[int, int, int, int]:
    pos = panel.get("gridPos") or {}
    x = min(max(int(pos.get("x", 0)), 0), GRID_COLUMNS - 1)
    w = min(max(int(pos.get("w", 12)), 1), GRID_COLUMNS - x)
    return x, max(int(pos.get("y", 0)), 0), w, max(int(pos.get("h", 8)), 1)


def layout(dashboard: Mapping[str, Any]) -> list[Placed]:
    """Every panel and row with its final position, sorted top to bottom, left to right."""
    placed: list[Placed] = []
    shift = 0
    for panel in dashboard.get("panels", []):
        x, y, w, h = _grid(panel)
        if panel.get("type") == "row":
            row_y = y + shift
            placed.append(Placed(panel, 0, row_y, GRID_COLUMNS, 1))
            nested = panel.get("panels") or []
            if nested:
                grids = [_grid(p) for p in nested]
                top = min(g[1] for g in grids)
                for inner, (ix, iy, iw, ih) in zip(nested, grids, strict=True):
                    placed.append(Placed(inner, ix, row_y + 1 + iy - top, iw, ih))
                shift += max(g[1] + g[3] for g in grids) - top
            continue
        placed.append(Placed(panel, x, y + shift, w, h))
    placed.sort(key=lambda p: (p.y, p.x))
    return placed


def height(placed: list[Placed]) -> int:
    """Grid units from the top of the dashboard to the bottom of its lowest panel."""
    return max((p.y + p.h for p in placed), default=1)
