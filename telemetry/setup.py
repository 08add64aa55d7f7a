"""The telemetry pipeline an app gets from its environment, and its Prometheus scrape endpoint."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from telemetry.instance import scrape_instance
from telemetry.runtime import Telemetry, build_telemetry
from telemetry.sdk import TelemetryConfig, sdk_disabled


def telemetry_from_environment(
    service_version: str,
    *,
    keep_slower_than_ms: float,
    keep_ratio: float,
    loop_lag_interval: float,
    listen: tuple[str, int] | None = None,
) -> Telemetry | None:
    """None when `OTEL_SDK_DISABLED=true`: no middleware, no `/metrics`, no-op hooks.

    `listen` (host, port the server binds) names the instance as a scrape of it would."""
    if sdk_disabled():
        return None
    return build_telemetry(
        TelemetryConfig(
            service_version=service_version,
            keep_slower_than_ms=keep_slower_than_ms,
            keep_ratio=keep_ratio,
            loop_lag_interval=loop_lag_interval,
            instance_id=scrape_instance(*listen) if listen is not None else None,
        )
    )


def prometheus_endpoint(telemetry: Telemetry) -> Callable[[], Awaitable[Response]]:
    """The `GET /metrics` handler for `telemetry`'s registry."""

    async def metrics() -> Response:
        """Prometheus text exposition of every instrument (the scrape path)."""
        return Response(telemetry.prometheus_text(), media_type=CONTENT_TYPE_LATEST)

    return metrics
