"""`python -m dashboards.preview`: the dashboards as PNG images, from a live Prometheus, no Grafana.

    python -m dashboards.preview --prometheus http://127.0.0.1:9090 --out preview
    python -m dashboards.preview --prometheus URL --out DIR --dashboard market-api --range 30m

For each dashboard in `dashboards/json/` (or the ones named with `--dashboard`), every Prometheus
target of every panel is run as Grafana would run it (variables filled in: `$job` is market-api,
`$instance` is All, the interval macros follow from `--range` and `--scrape-interval`), and the
panels are drawn where the dashboard puts them into `<out>/<uid>.png`. It answers "does this
panel show what I think, and does it have data?" in a terminal, a CI log or a review, where no
Grafana runs.

Exit status: 0 when every image was written; 2, with one line on stderr, when Prometheus cannot
be reached, a named dashboard does not exist or an option is malformed.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from dashboards.preview_data import (
    DEFAULT_SCRAPE_INTERVAL,
    PanelData,
    QueryWindow,
    fetch_dashboard,
    parse_duration,
)
from dashboards.preview_render import render_dashboard
from dashboards.prometheus_api import PrometheusApi, PrometheusUnreachable
from dashboards.queries import JSON_DIR, load_dashboards
from telemetry.thresholds import JOB

PROG: Final = "python -m dashboards.preview"
USAGE_ERROR: Final = 2


class PreviewError(Exception):
    """Nothing can be drawn: the message is the whole explanation."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Render the Grafana dashboards to PNG from a live Prometheus, without Grafana.",
    )
    parser.add_argument(
        "--prometheus", required=True, help="Prometheus root URL, e.g. http://127.0.0.1:9090"
    )
    parser.add_argument("--out", required=True, type=Path, help="directory for <uid>.png")
    parser.add_argument(
        "--dashboard",
        action="extend",
        nargs="+",
        metavar="UID",
        help="only these dashboards (one or more uids, repeatable; default: every dashboard)",
    )
    parser.add_argument("--range", default="15m", help="time range shown (default 15m)")
    parser.add_argument(
        "--end",
        help="when the range ends: unix seconds or an ISO 8601 time, UTC unless it says "
        "otherwise (default: now)",
    )
    parser.add_argument(
        "--scrape-interval",
        default=f"{DEFAULT_SCRAPE_INTERVAL:g}s",
        help="Prometheus's scrape interval, for $__rate_interval (default 15s)",
    )
    parser.add_argument("--job", default=JOB, help=f"value of $job (default {JOB})")
    parser.add_argument(
        "--instance", default=".*", help="value of $instance, a regex (default .*, All)"
    )
    parser.add_argument(
        "--json-dir", type=Path, default=JSON_DIR, help="dashboard JSON directory (default: ours)"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per query")
    return parser


def parse_time(text: str) -> float:
    """Unix seconds from `1764657000`, `2026-12-02T06:30:00Z` or `2026-12-02 06:30` (UTC)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"--end {text!r} is neither unix seconds nor an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def select(dashboards: dict[str, dict[str, object]], uids: Sequence[str] | None) -> list[str]:
    """The uids to draw, in file order; PreviewError names an unknown one."""
    if not dashboards:
        raise PreviewError("no dashboard JSON found (run python -m dashboards.generate)")
    if not uids:
        return list(dashboards)
    unknown = [uid for uid in uids if uid not in dashboards]
    if unknown:
        raise PreviewError(
            f"unknown dashboard uid {', '.join(unknown)} (known: {', '.join(dashboards)})"
        )
    return list(dict.fromkeys(uids))


def summary(uid: str, panels: Sequence[PanelData], path: Path) -> str:
    queried = [p for p in panels if p.results]
    empty = [p.title for p in queried if p.series_count == 0]
    failed = [p.title for p in queried if any(r.error for r in p.results)]
    line = f"{uid}: {len(panels)} panels, {len(queried)} queried"
    if empty:
        line += f", no data in {len(empty)}: {'; '.join(empty)}"
    if failed:
        line += f", query errors in: {'; '.join(failed)}"
    return f"{line} -> {path}"


def run(args: argparse.Namespace, window: QueryWindow) -> list[Path]:
    dashboards = load_dashboards(args.json_dir)
    uids = select(dashboards, args.dashboard)
    variables = {"job": args.job, "instance": args.instance}
    written = []
    with PrometheusApi(args.prometheus, timeout=args.timeout) as api:
        version = api.check()
        for uid in uids:
            panels = fetch_dashboard(api, dashboards[uid], window, variables)
            path = render_dashboard(
                dashboards[uid],
                panels,
                window,
                args.out / f"{uid}.png",
                source=f"Prometheus {version} at {api.base_url}",
            )
            print(summary(uid, panels, path), flush=True)
            written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.timeout <= 0:
            raise ValueError("--timeout must be positive")
        window = QueryWindow(
            range_seconds=parse_duration(args.range),
            scrape_interval=parse_duration(args.scrape_interval),
            end=None if args.end is None else parse_time(args.end),
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        run(args, window)
    except (PreviewError, PrometheusUnreachable, OSError) as exc:
        print(f"{PROG.split()[-1]}: {exc}", file=sys.stderr)
        return USAGE_ERROR
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
