"""Market API overview: is the service healthy right now, and where to look if not.

The first screen an operator sees (`GET /performance` redirects here): traffic, errors, latency
per route with exemplars that open the trace, the cache hit rate as the alert judges it, open
sockets, memory, event-loop lag, and the alerts firing now. Each panel links to its runbook
section and to the dashboard that breaks it down further. The *Replicas* row below puts the
replicas side by side: which answer, how the traffic is spread, and how much of the fleet's
socket capacity is used.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.builders import timeseries
from grafana_foundation_sdk.models import dashboard as models

from dashboards import catalog, skeleton
from dashboards.links import dashboard_link, runbook_link, runbooks
from dashboards.panels import (
    prometheus_table,
    query,
    single_stat,
    state_timeline,
    time_series,
    value_mapping,
)
from dashboards.promql import quantile, ratio_or_zero, selector, sum_rate
from telemetry.fleet_thresholds import (
    FLEET_WEBSOCKETS_NEAR_CAPACITY,
    REPLICAS_MISSING,
    REPLICAS_WINDOW_SECONDS,
)
from telemetry.thresholds import (
    CACHE_HIT_RATE_LOW,
    CACHE_HIT_RATIO,
    CACHE_MIN_REQUEST_RATE,
    HIGH_LATENCY,
    HTTP_DURATION_QUANTILE,
    LATENCY_QUANTILE,
    MEMORY_HIGH,
    MEMORY_LEAK_SUSPECTED,
    SERVICE_DOWN,
    TOO_MANY_WEBSOCKETS,
    WEBSOCKETS_MAX,
    promql_number,
)

HTTP_DURATION = "http_server_request_duration_seconds"
LATENCY_PANELS = (0.5, LATENCY_QUANTILE, 0.99)
"""One latency panel per quantile; the middle one is the quantile the alert judges."""
_FIRING = 'alertstate="firing"'


def _latency(q: float) -> timeseries.Panel:
    """One quantile per route; the alert judges p95 over all routes, drawn as the dashed line."""
    targets = [
        query(
            quantile(q, HTTP_DURATION, by_labels=("http_route",)), "{{http_route}}", exemplar=True
        )
    ]
    if q == LATENCY_QUANTILE:
        alert_rule = selector(
            HTTP_DURATION_QUANTILE,
            f'quantile="{promql_number(LATENCY_QUANTILE)}"',
            per_instance=False,
        )
        targets.append(query(alert_rule, "all routes (alert rule)"))
    return time_series(
        f"Latency p{q * 100:g} by route",
        f"p{q * 100:g} of `http.server.request.duration` per route template, from the "
        "histogram buckets. Diamonds are exemplars: each links to a trace Tempo kept (slow and "
        f"failed requests are always kept). {HIGH_LATENCY.alert} fires when the "
        f"p{LATENCY_QUANTILE * 100:g} of all routes together (the recording rule, on the "
        "p95 panel) stays above the dashed line.",
        "s",
        targets,
        alerts=[HIGH_LATENCY],
        links=[dashboard_link(*catalog.SLOW_REQUESTS)],
        size=(8, 9),
    )


def _replicas(dashboard: builders.Dashboard) -> builders.Dashboard:
    """Replicas side by side. The fleet recording rules exist only where several replicas run
    (alerts/rules/market-api-fleet.rules.yml), so these panels compute the same from the raw
    series: they work on any Prometheus that scrapes the app, and follow the instance filter."""
    requests = HTTP_DURATION + "_count"
    per_replica = sum_rate(requests, by_labels=("instance",))
    lookups = "cache_requests_total"
    return (
        dashboard.with_row(builders.Row("Replicas"))
        .with_panel(
            state_timeline(
                "Replicas up",
                "Whether each replica answered its scrape (`up`), one lane per replica. A "
                "replica whose container stopped leaves Docker's DNS and its lane just ends: "
                f"{REPLICAS_MISSING.alert} fires when fewer replicas answer than at the most "
                f"in the last {REPLICAS_WINDOW_SECONDS // 3600}h; {SERVICE_DOWN.alert} when one "
                "answers no more.",
                "short",
                [query(selector("up"), "{{instance}}")],
                mappings=[value_mapping({0: ("down", "red"), 1: ("up", "green")})],
                links=[runbook_link(REPLICAS_MISSING), runbook_link(SERVICE_DOWN)],
                size=(12, 8),
            )
        )
        .with_panel(
            time_series(
                "Fleet WebSockets used",
                "Open sockets of the replicas together over what they may hold: "
                f"{WEBSOCKETS_MAX} per replica that answers its scrape. "
                f"{FLEET_WEBSOCKETS_NEAR_CAPACITY.alert} fires above the dashed line: time for "
                "another replica.",
                "percentunit",
                [
                    query(
                        f"sum({selector('websocket_connections_active')})\n/\n"
                        f"(sum({selector('up')}) * {WEBSOCKETS_MAX})",
                        "used",
                    )
                ],
                alerts=[FLEET_WEBSOCKETS_NEAR_CAPACITY],
                links=[dashboard_link(*catalog.WEBSOCKETS)],
                size=(12, 8),
                soft_max=1,
            )
        )
        .with_panel(
            time_series(
                "Request rate per replica",
                "HTTP requests per second each replica answered, every route and status. nginx "
                "sends requests round robin, so the lines should lie together; a replica far "
                "below the others is failing nginx's checks or was just started.",
                "reqps",
                [query(per_replica, "{{instance}}")],
                size=(8, 8),
            )
        )
        .with_panel(
            time_series(
                "Request share per replica",
                "Each replica's share of the requests of the replicas shown: about 1/N each "
                "with N replicas. Long-lived WebSockets are not spread this way (see Active "
                "WebSockets, per replica).",
                "percentunit",
                [
                    query(
                        f"{per_replica}\n/ ignoring (instance) group_left\n{sum_rate(requests)}",
                        "{{instance}}",
                    )
                ],
                size=(8, 8),
                soft_max=1,
            )
        )
        .with_panel(
            time_series(
                "Cache hit rate per replica",
                "Share of each replica's cache lookups that were hits. Replicas share memcached, "
                "but each has its own near-cache: a replica just started hits less until its "
                "near-cache is warm. The alert judges the job as a whole (Cache hit rate).",
                "percentunit",
                [
                    query(
                        ratio_or_zero(
                            sum_rate(lookups, 'cache_result="hit"', by_labels=("instance",)),
                            sum_rate(lookups, by_labels=("instance",)),
                        ),
                        "{{instance}}",
                    )
                ],
                links=[dashboard_link(*catalog.CACHE)],
                size=(8, 8),
                soft_max=1,
            )
        )
    )


def build() -> models.Dashboard:
    requests = HTTP_DURATION + "_count"
    all_requests = sum_rate(requests)
    dashboard = skeleton.new(
        catalog.OVERVIEW,
        "Traffic, errors, latency, cache, sockets, memory and firing alerts of the market API.",
    )
    dashboard = (
        dashboard.with_panel(
            single_stat(
                "Alerts firing now",
                "Alerts of this job firing in Prometheus right now (`ALERTS`). Shows 0, not "
                "'No data', when nothing fires.",
                "short",
                [
                    query(
                        f"count({selector('ALERTS', _FIRING, per_instance=False)}) or vector(0)",
                        "firing",
                    )
                ],
                mappings=[value_mapping({0: ("0", "green")})],
                colour="red",
                size=(4, 8),
            )
        )
        .with_panel(
            prometheus_table(
                "Firing alerts",
                "Which alerts fire now, by name, severity and instance; the runbooks (link in "
                "the panel menu) have a section per alert name. Instance is empty for "
                "job-wide alerts (cache hit rate, latency).",
                "short",
                [
                    query(
                        "sum by (alertname, severity, instance) "
                        f"({selector('ALERTS', _FIRING, per_instance=False)})",
                        instant=True,
                        as_table=True,
                    )
                ],
                hidden_columns=["Time", "Value"],
                links=[runbooks()],
                no_value="No alert is firing",
                size=(8, 8),
            )
        )
        .with_panel(
            single_stat(
                "Instances up",
                f"Scrape targets of the job that answered their last scrape (`up`). "
                f"{SERVICE_DOWN.alert} fires when one stays down for "
                f"{SERVICE_DOWN.for_duration} or the job has no target at all.",
                "short",
                [query(f"sum({selector('up')})", "up")],
                mappings=[value_mapping({0: ("down", "red")})],
                size=(4, 8),
            )
        )
        .with_panel(
            time_series(
                "Request rate by route",
                "HTTP requests per second per route template, every status included.",
                "reqps",
                [query(sum_rate(requests, by_labels=("http_route",)), "{{http_route}}")],
                size=(8, 8),
            )
        )
        .with_panel(
            time_series(
                "Error ratio (5xx)",
                "Share of HTTP requests answered with a 5xx status, all routes. Upstream "
                "failures answer 503 or 502; 4xx (bad input) are not errors here.",
                "percentunit",
                [
                    query(
                        ratio_or_zero(
                            sum_rate(requests, 'http_response_status_code=~"5.."'), all_requests
                        ),
                        "5xx share",
                    )
                ],
                links=[dashboard_link(*catalog.SLOW_REQUESTS)],
                size=(8, 8),
            )
        )
        .with_panel(
            time_series(
                "Cache hit rate",
                "Share of cache lookups that were hits over 5m, all namespaces and backends "
                "of the job together: the recording rule the alert reads, so it ignores the "
                f"instance filter. {CACHE_HIT_RATE_LOW.alert} fires below the dashed line "
                "while the job does at least "
                f"{CACHE_MIN_REQUEST_RATE:g} "
                "lookup/s. Per namespace and backend: the cache dashboard.",
                "percentunit",
                [query(selector(CACHE_HIT_RATIO, per_instance=False), "{{job}}")],
                alerts=[CACHE_HIT_RATE_LOW],
                links=[dashboard_link(*catalog.CACHE)],
                size=(8, 8),
                soft_max=1,
            )
        )
        .with_panel(
            time_series(
                "Active WebSockets",
                "Open WebSocket connections per instance. "
                f"{TOO_MANY_WEBSOCKETS.alert} fires above the dashed line.",
                "short",
                [
                    query(
                        f"sum by (instance) ({selector('websocket_connections_active')})",
                        "{{instance}}",
                    )
                ],
                alerts=[TOO_MANY_WEBSOCKETS],
                links=[dashboard_link(*catalog.WEBSOCKETS)],
                size=(8, 8),
            )
        )
    )
    for q in LATENCY_PANELS:
        dashboard = dashboard.with_panel(_latency(q))
    dashboard = dashboard.with_panel(
        time_series(
            "Resident memory (RSS)",
            f"Resident set size per instance. {MEMORY_HIGH.alert} fires above the dashed "
            f"line; {MEMORY_LEAK_SUSPECTED.alert} when the trend would cross it. The "
            "projection is on the runtime dashboard.",
            "bytes",
            [
                query(
                    f"max by (instance) ({selector('process_memory_usage_bytes')})", "{{instance}}"
                )
            ],
            alerts=[MEMORY_HIGH, MEMORY_LEAK_SUSPECTED],
            links=[dashboard_link(*catalog.RUNTIME)],
            size=(12, 8),
        )
    ).with_panel(
        time_series(
            "Event-loop lag p99",
            "How late a periodic timer on the event loop fired (p99 per instance): the time "
            "the loop was blocked. Everything on the instance waits that long.",
            "s",
            [
                query(
                    quantile(0.99, "python_event_loop_lag_seconds", by_labels=("instance",)),
                    "{{instance}}",
                )
            ],
            links=[dashboard_link(*catalog.RUNTIME)],
            size=(12, 8),
        )
    )
    return skeleton.finish(_replicas(dashboard))
