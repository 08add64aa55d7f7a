"""Market API cache: why the hit rate is what it is, and what the misses cost upstream.

Hit rate per namespace and backend (a fallback to the in-memory backend shows as its own
series), operation latency, the memcached circuit breaker and the fallbacks it causes, the
memcached pool, and the upstream calls the cache saved versus those it could not.
"""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as models

from dashboards import catalog, skeleton
from dashboards.links import dashboard_link
from dashboards.panels import query, state_timeline, time_series, value_mapping
from dashboards.promql import quantile, ratio_or_zero, selector, sum_rate
from telemetry.thresholds import CACHE_HIT_RATE_LOW, LATENCY_QUANTILE

CACHE_REQUESTS = "cache_requests_total"
HIT = 'cache_result="hit"'
NAMESPACE_BACKEND = ("cache_namespace", "cache_backend")
BREAKER_STATES = {0: ("closed", "green"), 1: ("half-open", "yellow"), 2: ("open", "red")}


def build() -> models.Dashboard:
    dashboard = skeleton.new(
        catalog.CACHE,
        "Cache hit rate by namespace and backend, operation latency, circuit breaker, "
        "fallbacks, memcached pool and the upstream calls the cache saves.",
    )
    p = f"p{LATENCY_QUANTILE * 100:g}"
    dashboard = (
        dashboard.with_panel(
            time_series(
                "Hit rate by namespace and backend",
                "Share of lookups that were hits, per cache namespace and backend "
                "(`near` for the in-process near-cache in front of memcached, `memcached`, or "
                "`memory`: the only store without memcached, or the fallback while the breaker "
                f"is open). {CACHE_HIT_RATE_LOW.alert} judges all of them together; the "
                "dashed line is its threshold.",
                "percentunit",
                [
                    query(
                        ratio_or_zero(
                            sum_rate(CACHE_REQUESTS, HIT, by_labels=NAMESPACE_BACKEND),
                            sum_rate(CACHE_REQUESTS, by_labels=NAMESPACE_BACKEND),
                        ),
                        "{{cache_namespace}} / {{cache_backend}}",
                    )
                ],
                alerts=[CACHE_HIT_RATE_LOW],
                links=[dashboard_link(*catalog.OVERVIEW)],
                soft_max=1,
            )
        )
        .with_panel(
            time_series(
                "Lookups by result",
                "Cache lookups per second by namespace and result (hit or miss). A miss "
                "calls the loader, which usually means one upstream call.",
                "ops",
                [
                    query(
                        sum_rate(CACHE_REQUESTS, by_labels=("cache_namespace", "cache_result")),
                        "{{cache_namespace}} {{cache_result}}",
                    )
                ],
                stacked=True,
            )
        )
        .with_panel(
            time_series(
                f"Operation latency {p}",
                f"{p} duration of cache manager operations (get, set, delete) per backend, "
                "fallback included. Memcached calls are bounded by connect + 2 x read "
                "timeout; exemplars link to traces kept by the ratio sample.",
                "s",
                [
                    query(
                        quantile(
                            LATENCY_QUANTILE,
                            "cache_operation_duration_seconds",
                            by_labels=("cache_operation", "cache_backend"),
                        ),
                        "{{cache_operation}} {{cache_backend}}",
                        exemplar=True,
                    )
                ],
            )
        )
        .with_panel(
            state_timeline(
                "Circuit breaker state",
                "The breaker in front of memcached, per instance: closed (memcached "
                "serves), open (every call goes to the in-memory fallback), half-open (one "
                "probe decides).",
                "none",
                [query(f"max by (instance) ({selector('cache_breaker_state')})", "{{instance}}")],
                mappings=[value_mapping(BREAKER_STATES)],
            )
        )
        .with_panel(
            time_series(
                "Fallbacks by reason",
                "Operations served by the in-memory fallback per second, by reason "
                "(`breaker_open`, `connection`, `server_error`, ...). Non-zero means "
                "memcached is failing or the breaker is open.",
                "ops",
                [query(sum_rate("cache_fallbacks_total", by_labels=("reason",)), "{{reason}}")],
                stacked=True,
                no_value="No fallback",
            )
        )
        .with_panel(
            time_series(
                "Memcached pool",
                "Pooled memcached connections by state: used (a call in flight) and idle. "
                "Used near the pool maximum (CACHE_CONNECTION_POOL_MAX, not exported as a "
                "metric) means calls wait for a connection.",
                "short",
                [
                    query(
                        "sum by (db_client_connection_state) "
                        f"({selector('db_client_connection_count')})",
                        "{{db_client_connection_state}}",
                    )
                ],
                stacked=True,
            )
        )
        .with_panel(
            time_series(
                "Upstream calls saved",
                "Cache hits per second (each one a lookup answered without calling the "
                "upstream exchange) against the upstream calls actually made. The gap is "
                "what the cache saves the exchange.",
                "ops",
                [
                    query(sum_rate(CACHE_REQUESTS, HIT), "cache hits (upstream calls saved)"),
                    query(sum_rate("upstream_requests_total"), "upstream calls"),
                ],
            )
        )
        .with_panel(
            time_series(
                "Upstream calls by endpoint and outcome",
                "Calls to the upstream exchange per second by endpoint template and outcome.",
                "reqps",
                [
                    query(
                        sum_rate(
                            "upstream_requests_total", by_labels=("upstream_endpoint", "outcome")
                        ),
                        "{{upstream_endpoint}} {{outcome}}",
                    )
                ],
                stacked=True,
            )
        )
        .with_panel(
            time_series(
                f"Upstream latency {p}",
                f"{p} duration of upstream calls per endpoint template: what a cache miss "
                "costs the request that waits for it.",
                "s",
                [
                    query(
                        quantile(
                            LATENCY_QUANTILE,
                            "upstream_request_duration_seconds",
                            by_labels=("upstream_endpoint",),
                        ),
                        "{{upstream_endpoint}}",
                        exemplar=True,
                    )
                ],
                size=(24, 8),
            )
        )
    )
    return skeleton.finish(dashboard)
