"""What the app needs from a telemetry pipeline, stated by the app so that it never imports one.

`app/` is telemetry-free: the lifespan wires an `AppTelemetry` into the parts and the monitoring
routes read its views through `Services`; only the composition root (app/main.py) knows which
implementation that is: `telemetry.runtime.Telemetry`, or `DisabledTelemetry` when telemetry is
off. The parts' own hooks live with the parts (app/cache/instrumentation.py,
app/ws/instrumentation.py).
"""

from __future__ import annotations

from typing import Any, Protocol

from app.cache.breaker import CircuitBreaker
from app.cache.instrumentation import CacheInstrumentation, NoopCacheInstrumentation
from app.cache.manager import CacheManager
from app.periodic import Periodic
from app.upstream.client import ExchangeClient
from app.ws.instrumentation import NoopWebSocketInstrumentation, WebSocketInstrumentation
from app.ws.stats import WebSocketStats


class MonitoringSource(Protocol):
    """The views of the telemetry the monitoring API serves, already shaped as JSON documents."""

    def summary_sections(self) -> dict[str, Any]:
        """The `api` and `system` sections of the performance summary."""

    def api_report(self) -> dict[str, Any]:
        """Requests, errors and latency quantiles per route template, since start."""

    def bottlenecks_report(self, runbook_page: str) -> dict[str, Any]:
        """Which alert thresholds are breached now; each check links into `runbook_page`."""

    @property
    def background_tasks(self) -> tuple[Periodic, ...]:
        """The periodic tasks the telemetry itself runs, for the summary's task section."""


class TelemetryDisabled(Exception):
    """A view of instruments that do not exist: the API answers 503 `telemetry_disabled`."""

    detail = "telemetry is off (OTEL_SDK_DISABLED=true)"


class AppTelemetry(MonitoringSource, Protocol):
    """Everything the composition root wires into the app's parts, and the monitoring views.

    `start()` runs first in the lifespan and `shutdown()` last; the hooks are asked for while the
    parts are built, each part taking only its own protocol.
    """

    def start(self) -> None: ...

    async def shutdown(self) -> None: ...

    def instrument_upstream(self, client: ExchangeClient) -> ExchangeClient:
        """The client the app calls: `client`, or a wrapper that measures each call."""

    def cache_instrumentation(self, breaker: CircuitBreaker) -> CacheInstrumentation:
        """Hooks for the cache manager that is built with `breaker`."""

    def observe_cache(self, manager: CacheManager) -> None:
        """Read the manager's counters when metrics are collected."""

    def websocket_instrumentation(self) -> WebSocketInstrumentation: ...

    def observe_websockets(self, stats: WebSocketStats) -> None:
        """Read the WebSocket counters when metrics are collected."""


class DisabledTelemetry:
    """The app's telemetry when there is none (`OTEL_SDK_DISABLED=true`): every hook is the
    part's own no-op, and the views that would read instruments raise `TelemetryDisabled`."""

    __slots__ = ()

    def start(self) -> None:
        return None

    async def shutdown(self) -> None:
        return None

    def instrument_upstream(self, client: ExchangeClient) -> ExchangeClient:
        return client

    def cache_instrumentation(self, breaker: CircuitBreaker) -> CacheInstrumentation:
        return NoopCacheInstrumentation()

    def observe_cache(self, manager: CacheManager) -> None:
        return None

    def websocket_instrumentation(self) -> WebSocketInstrumentation:
        return NoopWebSocketInstrumentation()

    def observe_websockets(self, stats: WebSocketStats) -> None:
        return None

    def summary_sections(self) -> dict[str, Any]:
        return {"api": {"telemetry": "disabled"}, "system": {"telemetry": "disabled"}}

    @property
    def background_tasks(self) -> tuple[Periodic, ...]:
        return ()

    def api_report(self) -> dict[str, Any]:
        raise TelemetryDisabled

    def bottlenecks_report(self, runbook_page: str) -> dict[str, Any]:
        raise TelemetryDisabled
