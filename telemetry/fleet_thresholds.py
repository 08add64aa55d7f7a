"""Alerts and recording rules about the replicas of the service taken together.

The per-process thresholds (`telemetry/thresholds.py`) judge each replica on its own, and the
app can judge them on its own measurements too (`/bottlenecks`). What is defined here needs
Prometheus' view of every replica at once (how many answer, what they hold together), which no
single process has: these rules exist only in Prometheus, in their own rule file
(`alerts/rules/market-api-fleet.rules.yml`, rendered by `python -m alerts.generate`).

With a single replica they still hold: the fleet is that one process.
"""

from __future__ import annotations

from typing import Final

from telemetry.thresholds import (
    SELECTOR,
    WEBSOCKETS_MAX,
    Comparison,
    Condition,
    RecordingRule,
    Severity,
    Threshold,
    Unit,
    promql_number,
)

# --- Recording rules -----------------------------------------------------------------------
# `job:` series are the whole fleet (every replica of the job summed); `instance:` series keep
# one series per replica, for comparing replicas side by side.

REPLICAS_UP: Final = "job:up:sum"
"""Replicas whose last scrape answered."""
FLEET_REQUEST_RATE: Final = "job:http_server_requests:rate5m"
INSTANCE_REQUEST_RATE: Final = "instance:http_server_requests:rate5m"
FLEET_WEBSOCKETS: Final = "job:websocket_connections_active:sum"
FLEET_WEBSOCKET_CAPACITY_USED: Final = "job:websocket_connections_active_per_capacity:ratio"
"""Open sockets of the fleet over what the answering replicas may hold together
(`WEBSOCKETS_MAX` each, the per-replica alert's threshold)."""

_REQUESTS = f"http_server_request_duration_seconds_count{{{SELECTOR}}}"

FLEET_RECORDING_RULES: Final[tuple[RecordingRule, ...]] = (
    RecordingRule(REPLICAS_UP, f"sum by (job) (up{{{SELECTOR}}})"),
    RecordingRule(FLEET_REQUEST_RATE, f"sum by (job) (rate({_REQUESTS}[5m]))"),
    RecordingRule(INSTANCE_REQUEST_RATE, f"sum by (job, instance) (rate({_REQUESTS}[5m]))"),
    RecordingRule(FLEET_WEBSOCKETS, f"sum by (job) (websocket_connections_active{{{SELECTOR}}})"),
    RecordingRule(
        FLEET_WEBSOCKET_CAPACITY_USED,
        f"{FLEET_WEBSOCKETS}\n/\n({REPLICAS_UP} * {WEBSOCKETS_MAX})",
    ),
)

# --- Alerts --------------------------------------------------------------------------------

REPLICAS_WINDOW_SECONDS: Final = 3600
"""How far back "the replicas the job had" reaches. Discovery by DNS forgets a replica whose
container stopped (no `up == 0` is left behind), so the count is compared with its own recent
peak; a deliberate scale-down stops alerting once the peak has left the window."""
FLEET_WEBSOCKET_CAPACITY_MAX: Final = 0.8
"""Share of the fleet's socket capacity past which it needs another replica: at 80 % one
replica more going away pushes the others towards their own limit."""

REPLICAS_MISSING: Final = Threshold(
    alert="MarketApiReplicasMissing",
    severity=Severity.WARNING,
    for_seconds=5 * 60,
    condition=Condition(
        f"max_over_time({REPLICAS_UP}{{{SELECTOR}}}[{REPLICAS_WINDOW_SECONDS // 3600}h])\n-\n"
        f"{REPLICAS_UP}{{{SELECTOR}}}",
        Comparison.GT,
        0,
        Unit.COUNT,
    ),
    summary="Fewer Market API replicas answer than did within the last hour.",
    description=(
        "{{ $value | humanize }} fewer replicas of job {{ $labels.job }} answer their scrape "
        f"than at the most during the last {REPLICAS_WINDOW_SECONDS // 3600}h; the others "
        "take their share of the traffic and the sockets."
    ),
)

FLEET_WEBSOCKETS_NEAR_CAPACITY: Final = Threshold(
    alert="MarketApiFleetWebSocketsNearCapacity",
    severity=Severity.WARNING,
    for_seconds=10 * 60,
    condition=Condition(
        f"{FLEET_WEBSOCKET_CAPACITY_USED}{{{SELECTOR}}}",
        Comparison.GT,
        FLEET_WEBSOCKET_CAPACITY_MAX,
        Unit.RATIO,
    ),
    # With no replica answering, the capacity is zero and the ratio infinite: MarketApiDown
    # already says so.
    guard=Condition(f"{REPLICAS_UP}{{{SELECTOR}}}", Comparison.GT, 0, Unit.COUNT),
    summary=(
        f"Market API replicas hold more than {FLEET_WEBSOCKET_CAPACITY_MAX * 100:g}% of the "
        "WebSockets they can take together."
    ),
    description=(
        "The replicas of job {{ $labels.job }} hold {{ $value | humanizePercentage }} of the "
        f"WebSockets they can take together ({WEBSOCKETS_MAX} per replica answering; threshold "
        f"{promql_number(FLEET_WEBSOCKET_CAPACITY_MAX * 100)}%)."
    ),
)

FLEET_THRESHOLDS: Final[tuple[Threshold, ...]] = (REPLICAS_MISSING, FLEET_WEBSOCKETS_NEAR_CAPACITY)
