"""Render the dashboards to `dashboards/json/<uid>.json` (classic dashboard JSON).

    python -m dashboards.generate          # rewrite the committed JSON
    python -m dashboards.generate --check  # exit 1 if a committed file is stale or missing

Grafana loads the committed JSON through its file provisioning; the Python is the source, so a
dashboard is changed here and regenerated, never edited in Grafana and exported. The output is
deterministic (sorted keys, fixed panel ids, trailing newline) so a regeneration that changes
nothing leaves no diff, and a test fails when the JSON and the Python disagree. Every dashboard
passes `dashboards.lint` before it is written.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as models

from dashboards import cache, lint, overview, runtime, slow_requests, websockets
from dashboards.links import DASHBOARD_TAG
from dashboards.queries import JSON_DIR

BUILDERS: Final[tuple[Callable[[], models.Dashboard], ...]] = (
    overview.build,
    cache.build,
    websockets.build,
    runtime.build,
    slow_requests.build,
)


def to_data(dashboard: models.Dashboard) -> dict[str, Any]:
    """The dashboard as plain JSON data (what Grafana stores)."""
    data: dict[str, Any] = json.loads(json.dumps(dashboard, cls=JSONEncoder))
    return data


def render(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def rendered() -> dict[str, str]:
    """File name -> text of every dashboard, after the lint passed on all of them together
    (links between dashboards are checked against the whole set)."""
    dashboards = {d["uid"]: d for d in (to_data(build()) for build in BUILDERS)}
    problems = lint.lint(dashboards)
    if problems:
        raise ValueError("dashboards break the lint rules:\n" + "\n".join(problems))
    return {f"{uid}.json": render(data) for uid, data in dashboards.items()}


def _ours(path: Path) -> bool:
    """A dashboard of this service (tagged so); other JSON in the directory is left alone."""
    try:
        tags = json.loads(path.read_text()).get("tags", [])
    except (ValueError, AttributeError):
        return False
    return DASHBOARD_TAG in tags


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dashboards.generate", description=__doc__)
    parser.add_argument(
        "--check", action="store_true", help="do not write; exit 1 if a file is out of date"
    )
    parser.add_argument(
        "--output-dir", type=Path, default=JSON_DIR, help="directory of the <uid>.json files"
    )
    args = parser.parse_args(argv)
    directory: Path = args.output_dir
    expected = rendered()
    present = (
        {p.name for p in directory.glob("*.json") if _ours(p)} if directory.is_dir() else set()
    )
    stale = sorted(
        name
        for name, text in expected.items()
        if not (directory / name).exists() or (directory / name).read_text() != text
    )
    extra = sorted(present - set(expected))
    if args.check:
        for name in stale + extra:
            print(
                f"{directory / name} is out of date: run python -m dashboards.generate",
                file=sys.stderr,
            )
        return 1 if stale or extra else 0
    directory.mkdir(parents=True, exist_ok=True)
    for name in stale:
        (directory / name).write_text(expected[name])
        print(f"wrote {directory / name}")
    for name in extra:
        (directory / name).unlink()
        print(f"removed {directory / name} (no dashboard has that uid)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
