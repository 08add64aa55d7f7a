"""Market API WebSockets: how many sockets, how they end, and whether clients keep up.

Active sockets against the alert threshold, connections opened and closed by close code,
messages by topic family (dropped ones mean a client that does not read), session lengths and
the slow-consumer closes (1013).
"""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as models

from dashboards import catalog, skeleton
from dashboards.links import dashboard_link
from dashboards.panels import query, time_series
from dashboards.promql import RATE_INTERVAL, quantile, selector, sum_rate
from telemetry.thresholds import TOO_MANY_WEBSOCKETS

ACTIVE = "websocket_connections_active"
CLOSED = "websocket_connections_closed_total"
TRY_AGAIN_LATER = 'websocket_close_code="1013"'


def build() -> models.Dashboard:
    dashboard = skeleton.new(
        catalog.WEBSOCKETS,
        "Open WebSockets against the alert threshold, opens and closes by close code, "
        "messages, session durations and slow-consumer closes.",
    )
    dashboard = (
        dashboard.with_panel(
            time_series(
                "Active connections vs limit",
                "Open WebSocket connections per instance. The app does not export "
                "WS_MAX_CONNECTIONS (the hard limit, where new sockets are closed with 1013) "
                f"as a metric, so the dashed line is the alert threshold instead: "
                f"{TOO_MANY_WEBSOCKETS.alert} fires above it.",
                "short",
                [query(f"sum by (instance) ({selector(ACTIVE)})", "{{instance}}")],
                alerts=[TOO_MANY_WEBSOCKETS],
                links=[dashboard_link(*catalog.OVERVIEW)],
            )
        )
        .with_panel(
            time_series(
                "Connections opened and closed",
                "Closes per second by close code (0 = a code outside the known set), and "
                "opens derived as closes plus the change in open sockets (there is no "
                "opened counter). Many short sessions mean clients reconnecting in a loop.",
                "cps",
                [
                    query(
                        sum_rate(CLOSED, by_labels=("websocket_close_code",)),
                        "closed {{websocket_close_code}}",
                    ),
                    query(
                        f"({sum_rate(CLOSED)} or vector(0))\n+\n"
                        f"sum(deriv({selector(ACTIVE)}[{RATE_INTERVAL}]))",
                        "opened",
                    ),
                ],
            )
        )
        .with_panel(
            time_series(
                "Messages by topic family",
                "Frames per second handed to clients (sent), received from them, and "
                "updates dropped from a full per-client queue, by topic family. Drops mean "
                "a client that does not read fast enough.",
                "mps",
                [
                    query(
                        sum_rate(
                            "websocket_messages_sent_total", by_labels=("websocket_topic_family",)
                        ),
                        "sent {{websocket_topic_family}}",
                    ),
                    query(
                        sum_rate(
                            "websocket_messages_received_total",
                            by_labels=("websocket_topic_family",),
                        ),
                        "received {{websocket_topic_family}}",
                    ),
                    query(
                        sum_rate(
                            "websocket_messages_dropped_total",
                            by_labels=("websocket_topic_family",),
                        ),
                        "dropped {{websocket_topic_family}}",
                    ),
                ],
            )
        )
        .with_panel(
            time_series(
                "Slow-consumer closes (1013)",
                "Sockets closed with 1013 per second: clients whose queue stayed full for "
                "WS_SLOW_CONSUMER_TIMEOUT s, and arrivals turned away at WS_MAX_CONNECTIONS "
                "(the metric has one close code for both; the summary endpoint's "
                "`slow_consumer_closes` counts the former alone).",
                "cps",
                [query(sum_rate(CLOSED, TRY_AGAIN_LATER, by_labels=("instance",)), "{{instance}}")],
                no_value="No 1013 close",
            )
        )
        .with_panel(
            time_series(
                "Session duration",
                "Median and p95 length of WebSocket sessions that ended, by close code "
                "(from the session-duration histogram; rejected arrivals are not sessions).",
                "s",
                [
                    query(
                        quantile(
                            0.5,
                            "websocket_session_duration_seconds",
                            by_labels=("websocket_close_code",),
                        ),
                        "p50 {{websocket_close_code}}",
                    ),
                    query(
                        quantile(
                            0.95,
                            "websocket_session_duration_seconds",
                            by_labels=("websocket_close_code",),
                        ),
                        "p95 {{websocket_close_code}}",
                    ),
                ],
                size=(24, 8),
                no_value="No session ended",
            )
        )
    )
    return skeleton.finish(dashboard)
