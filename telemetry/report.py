"""JSON views of the telemetry for the monitoring API, read from the instruments themselves.

The request figures come from the same pre-aggregated histogram that `/metrics` and OTLP export,
so the API and the dashboards always agree; quantiles use Prometheus' interpolation.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from telemetry.bottlenecks import AlertState
from telemetry.runtime import Telemetry
from telemetry.thresholds import BY_ALERT
from telemetry.window import histogram_quantile

_START = time.monotonic()


def _quantiles(bounds: tuple[float, ...], counts: list[int]) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for label, q in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
        value = histogram_quantile(q, bounds, counts)
        out[label] = None if math.isnan(value) else round(value * 1000, 3)
    return out


@dataclass
class _Route:
    requests: int = 0
    server_errors: int = 0
    client_errors: int = 0
    seconds: float = 0.0
    counts: list[int] = field(default_factory=list)

    def add(self, status: int, counts: list[int], seconds: float, requests: int) -> None:
        self.requests += requests
        self.seconds += seconds
        if status >= 500:
            self.server_errors += requests
        elif status >= 400:
            self.client_errors += requests
        self.counts = [a + b for a, b in zip(self.counts or [0] * len(counts), counts, strict=True)]


def api_section(telemetry: Telemetry) -> dict[str, Any]:
    """Per route (method and template) and overall: requests, errors, latency quantiles."""
    histogram = telemetry.instruments.http_duration
    bounds = histogram.boundaries
    routes: dict[str, _Route] = defaultdict(_Route)
    for attributes, counts, seconds, requests in histogram.per_attributes():
        name = f"{attributes.get('http.request.method')} {attributes.get('http.route')}"
        status = int(str(attributes.get("http.response.status_code", 0)))
        routes[name].add(status, counts, seconds, requests)
    counts, seconds, requests = histogram.totals()
    return {
        "requests": requests,
        "server_errors": sum(r.server_errors for r in routes.values()),
        "mean_ms": round(seconds / requests * 1000, 3) if requests else None,
        **_quantiles(bounds, counts),
        "routes": {
            name: {
                "requests": r.requests,
                "server_errors": r.server_errors,
                "client_errors": r.client_errors,
                "mean_ms": round(r.seconds / r.requests * 1000, 3) if r.requests else None,
                **_quantiles(bounds, r.counts),
            }
            for name, r in sorted(routes.items())
        },
    }


def system_section(telemetry: Telemetry) -> dict[str, Any]:
    process = telemetry.process
    lag = telemetry.loop_lag
    keeper = telemetry.keeper.stats
    stats = telemetry.export_stats
    return {
        "rss_bytes": process.rss_bytes(),
        "cpu_utilization": round(process.cpu_utilization(), 4),
        "open_file_descriptors": process.open_fds(),
        "threads": process.threads(),
        "uptime_seconds": round(time.monotonic() - _START, 1),
        "event_loop_lag": {
            "interval_seconds": lag.interval,
            "max_recent_seconds": round(lag.max_recent, 6),
            "last_seconds": round(lag.recent[-1], 6) if lag.recent else None,
        },
        "traces": {
            "kept": keeper.kept_traces,
            "dropped": keeper.dropped_traces,
            "spans_exported": stats.exported["traces"],
            "spans_lost": stats.dropped["traces"] + keeper.overflow_spans,
        },
        "metric_exports": {"ok": stats.exported["metrics"], "failed": stats.failures["metrics"]},
    }


def bottlenecks_report(telemetry: Telemetry, runbook_page: str) -> dict[str, Any]:
    """`breached`: conditions that hold now; of those, `firing` have held for the rule's `for:`
    and `pending` not yet, the states Prometheus would report. Each check links to its section
    of the runbooks at `runbook_page` (an absolute URL)."""
    checks = telemetry.bottlenecks()
    return {
        "breached": [c.alert for c in checks if c.breached],
        "pending": [c.alert for c in checks if c.state is AlertState.PENDING],
        "firing": [c.alert for c in checks if c.state is AlertState.FIRING],
        "checks": [
            {**c.as_dict(), "runbook_url": f"{runbook_page}#{BY_ALERT[c.alert].runbook_anchor}"}
            for c in checks
        ],
    }
