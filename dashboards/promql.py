"""PromQL pieces every panel query is built from, so the dashboard conventions hold by
construction: each selector filters on the `job` variable (and on `instance` for series scraped
per process), and each `rate()`/`increase()` spans Grafana's `$__rate_interval`, which is never
shorter than four scrape intervals and so never comes back empty.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

JOB_MATCHER: Final = 'job=~"$job"'
INSTANCE_MATCHER: Final = 'instance=~"$instance"'
RATE_INTERVAL: Final = "$__rate_interval"


def selector(metric: str, *matchers: str, per_instance: bool = True) -> str:
    """`metric{job=~"$job", instance=~"$instance", <matchers>}`.

    `per_instance=False` is for series that carry no `instance` label of the app's process:
    recording rules aggregated by job, and Prometheus' own `ALERTS`.
    """
    scope = [JOB_MATCHER, INSTANCE_MATCHER] if per_instance else [JOB_MATCHER]
    return f"{metric}{{{', '.join([*scope, *matchers])}}}"


def rate(metric: str, *matchers: str) -> str:
    return f"rate({selector(metric, *matchers)}[{RATE_INTERVAL}])"


def by(labels: Iterable[str]) -> str:
    """` by (a, b) ` for an aggregation, or nothing when there is nothing to keep."""
    kept = ", ".join(labels)
    return f" by ({kept}) " if kept else ""


def sum_rate(metric: str, *matchers: str, by_labels: Iterable[str] = ()) -> str:
    return f"sum{by(by_labels)}({rate(metric, *matchers)})"


def quantile(q: float, histogram: str, *matchers: str, by_labels: Iterable[str] = ()) -> str:
    """`histogram_quantile` over the `_bucket` series of `histogram`, kept per `by_labels`."""
    buckets = sum_rate(f"{histogram}_bucket", *matchers, by_labels=("le", *by_labels))
    return f"histogram_quantile({q:g}, {buckets})"


def ratio_or_zero(numerator: str, denominator: str) -> str:
    """`numerator / denominator` where a numerator with no series yet counts as zero (no 5xx
    ever, no hit ever), so the panel shows 0 instead of nothing when it matters most.

    Both operands must be aggregated by the same labels."""
    return f"(\n  {numerator}\n  or\n  {denominator} * 0\n)\n/\n{denominator}"
