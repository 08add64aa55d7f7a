"""docs/dashboards.md stays true: it names every dashboard and panel, and the SDK pin."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from dashboards.queries import iter_panels, load_dashboards

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "dashboards.md").read_text()


def test_every_dashboard_and_panel_is_described() -> None:
    for uid, dashboard in load_dashboards().items():
        assert f"### {dashboard['title']} (`{uid}`)" in DOC, uid
        for panel in iter_panels(dashboard):
            assert panel["title"] in DOC, f"{uid}: {panel['title']}"


def test_the_documented_sdk_build_is_the_pinned_one() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    pins = [r for r in pyproject["project"]["optional-dependencies"]["dev"] if "grafana" in r]
    assert len(pins) == 1
    version = re.fullmatch(r"grafana-foundation-sdk==(\S+)", pins[0])
    assert version is not None
    assert f"`{version.group(1)}`" in DOC
    assert version.group(1).endswith("!11.6.0")
