"""What the app needs from a telemetry pipeline, stated by the app so that it never imports one.

`app/` is telemetry-free: the monitoring routes read the views below through `Services`, and only
the composition root (app/main.py) knows which implementation it hands them
(`telemetry.runtime.Telemetry`). The parts' own hooks live with the parts
(app/cache/instrumentation.py, app/ws/instrumentation.py).
"""

from __future__ import annotations

from typing import Any, Protocol


class MonitoringSource(Protocol):
    """The views of the telemetry the monitoring API serves, already shaped as JSON documents."""

    def summary_sections(self) -> dict[str, Any]:
        """The `api` and `system` sections of the performance summary."""

    def api_report(self) -> dict[str, Any]:
        """Requests, errors and latency quantiles per route template, since start."""

    def bottlenecks_report(self, runbook_page: str) -> dict[str, Any]:
        """Which alert thresholds are breached now; each check links into `runbook_page`."""
