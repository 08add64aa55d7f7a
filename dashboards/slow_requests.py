"""Market API slow requests: the traces behind a latency or error spike.

The app keeps every trace slower than its keep threshold or failed, so the Tempo search below
always finds them; next to it, the same requests counted from the metrics (every request, not
only the kept traces) and the trace pipeline's keep/drop counts.
"""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as models

from dashboards import catalog, skeleton
from dashboards.links import dashboard_link
from dashboards.panels import query, time_series, trace_table
from dashboards.promql import sum_rate
from telemetry.thresholds import HIGH_LATENCY, JOB, LATENCY_MAX_SECONDS, promql_number

REQUESTS = "http_server_request_duration_seconds"
TRACE_LIMIT = 100


def slow_or_failed_traceql() -> str:
    """TraceQL for this service's traces slower than the latency threshold, or failed."""
    milliseconds = promql_number(LATENCY_MAX_SECONDS * 1000)
    return (
        f'{{ resource.service.name = "{JOB}" && (duration > {milliseconds}ms || status = error) }}'
    )


def build() -> models.Dashboard:
    threshold = f"{LATENCY_MAX_SECONDS * 1000:g} ms"
    dashboard = skeleton.new(
        catalog.SLOW_REQUESTS,
        f"Traces of requests slower than {threshold} or failed (Tempo), and the same "
        "requests counted from the metrics.",
    )
    dashboard = (
        dashboard.with_panel(
            trace_table(
                f"Traces slower than {threshold} or failed",
                f"Tempo search `{slow_or_failed_traceql()}`, newest {TRACE_LIMIT}, longest "
                "first. Click a trace ID to open the trace view. The threshold is the one "
                f"{HIGH_LATENCY.alert} uses; the service always keeps such traces "
                "(TRACE_KEEP_SLOWER_THAN_MS, errors), whatever the sampling ratio.",
                slow_or_failed_traceql(),
                limit=TRACE_LIMIT,
                links=[dashboard_link(*catalog.OVERVIEW)],
            )
        )
        .with_panel(
            time_series(
                f"Requests slower than {threshold} by route",
                f"Requests per second per route that took longer than {threshold}: every "
                f"request minus those in the histogram bucket le={threshold}. Counted from the "
                "metrics, so it includes requests whose trace was not kept.",
                "reqps",
                [
                    query(
                        f"{sum_rate(REQUESTS + '_count', by_labels=('http_route',))}\n-\n"
                        + sum_rate(
                            REQUESTS + "_bucket",
                            f'le="{promql_number(LATENCY_MAX_SECONDS)}"',
                            by_labels=("http_route",),
                        ),
                        "{{http_route}}",
                    )
                ],
                size=(8, 8),
            )
        )
        .with_panel(
            time_series(
                "Failed requests by route",
                "Requests per second answered with a 5xx status, per route template. Their "
                "traces are always kept.",
                "reqps",
                [
                    query(
                        sum_rate(
                            REQUESTS + "_count",
                            'http_response_status_code=~"5.."',
                            by_labels=("http_route", "http_response_status_code"),
                        ),
                        "{{http_route}} {{http_response_status_code}}",
                    )
                ],
                size=(8, 8),
                no_value="No 5xx",
            )
        )
        .with_panel(
            time_series(
                "Traces kept and dropped",
                "Local traces per second by keep decision: kept (slow, failed or in the "
                "sample ratio, exported to Tempo) and dropped before export.",
                "cps",
                [
                    query(
                        sum_rate("telemetry_traces_total", by_labels=("decision",)), "{{decision}}"
                    )
                ],
                size=(8, 8),
            )
        )
    )
    return skeleton.finish(dashboard)
