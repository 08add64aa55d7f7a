"""Request, system and threshold views of the monitoring API, read from the telemetry pipeline
through `app.observability.MonitoringSource`, and the `/performance` redirect to Grafana.

The views are served by the monitoring router (`app/api/monitoring.py`, the one router under
`/api/monitoring/performance`). They answer 503 with a JSON reason when telemetry is off
(`OTEL_SDK_DISABLED=true`: `DisabledTelemetry` raises `TelemetryDisabled`, app/errors.py answers):
the numbers they would show are the instruments' own.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import RedirectResponse

from app.api.runbooks import runbook_page
from app.observability import MonitoringSource
from app.services import Services, get_services

router = APIRouter(tags=["monitoring"])
AppServices = Annotated[Services, Depends(get_services)]


def telemetry_sections(telemetry: MonitoringSource) -> dict[str, Any]:
    """The `api` and `system` sections of the summary."""
    return telemetry.summary_sections()


def api_view(services: Services) -> dict[str, Any]:
    return services.telemetry.api_report()


def bottlenecks_view(services: Services, request_base_url: str) -> dict[str, Any]:
    page = runbook_page(services.settings.runbook_base_url, request_base_url)
    return services.telemetry.bottlenecks_report(page)


@router.get("/performance", include_in_schema=False)
async def performance(services: AppServices) -> RedirectResponse:
    """The performance dashboard lives in Grafana; no HTML is served here."""
    return RedirectResponse(services.settings.grafana_dashboard_url, status_code=307)
