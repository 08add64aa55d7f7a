"""Every synchronous instrument the service records, with its semantic-convention name and unit.

The two recorded on every request are pre-aggregated `FastHistogram`s (see histograms.py); the
rest are SDK instruments.

Counters that the service already keeps as plain integers (cache requests, fallbacks, WebSocket
messages) are observable instruments registered next to the component they read (see cache.py,
websocket.py, process.py); only measurements that need a distribution are recorded here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from opentelemetry.metrics import Counter, Histogram, Meter

from telemetry.histograms import FastHistogram

# Stable HTTP semantic conventions: seconds, these boundaries.
HTTP_DURATION_BUCKETS: Final = (
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
# Cache calls are sub-millisecond on a hit and bounded by the memcached timeouts on a failure.
CACHE_DURATION_BUCKETS: Final = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
)  # fmt: skip
SESSION_DURATION_BUCKETS: Final = (1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)
LOOP_LAG_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True)
class Instruments:
    http_duration: FastHistogram
    cache_duration: FastHistogram
    upstream_requests: Counter
    upstream_duration: Histogram
    websocket_session_duration: Histogram
    event_loop_lag: Histogram

    @classmethod
    def create(cls, meter: Meter, hot: tuple[FastHistogram, FastHistogram]) -> Instruments:
        http_duration, cache_duration = hot
        return cls(
            http_duration=http_duration,
            cache_duration=cache_duration,
            upstream_requests=meter.create_counter(
                "upstream.requests",
                unit="{request}",
                description="Calls to the upstream exchange by endpoint and outcome.",
            ),
            upstream_duration=meter.create_histogram(
                "upstream.request.duration",
                unit="s",
                description="Duration of calls to the upstream exchange.",
                explicit_bucket_boundaries_advisory=list(HTTP_DURATION_BUCKETS),
            ),
            websocket_session_duration=meter.create_histogram(
                "websocket.session.duration",
                unit="s",
                description="How long WebSocket sessions lasted, by close code.",
                explicit_bucket_boundaries_advisory=list(SESSION_DURATION_BUCKETS),
            ),
            event_loop_lag=meter.create_histogram(
                "python.event_loop.lag",
                unit="s",
                description="How late a periodic timer on the event loop fired: time the loop "
                "was blocked.",
                explicit_bucket_boundaries_advisory=list(LOOP_LAG_BUCKETS),
            ),
        )


def hot_path_histograms() -> tuple[FastHistogram, FastHistogram]:
    """`http.server.request.duration` and `cache.operation.duration`, recorded per request."""
    return (
        FastHistogram(
            "http.server.request.duration",
            "s",
            "Duration of HTTP server requests.",
            HTTP_DURATION_BUCKETS,
        ),
        FastHistogram(
            "cache.operation.duration",
            "s",
            "Duration of cache manager operations, fallback included.",
            CACHE_DURATION_BUCKETS,
        ),
    )
