"""Request, system and threshold views of the monitoring API, read from the telemetry pipeline,
and the `/performance` redirect to the Grafana dashboard.

The views are served by the monitoring router (`app/api/monitoring.py`, the one router under
`/api/monitoring/performance`). They answer 503 with a JSON reason when telemetry is off
(`OTEL_SDK_DISABLED=true`): the numbers they would show are the instruments' own.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import RedirectResponse, Response

from app.api.runbooks import runbook_page
from app.errors import error_response
from app.services import Services, get_services
from telemetry.report import api_section, bottlenecks_report, system_section
from telemetry.runtime import Telemetry

router = APIRouter(tags=["monitoring"])
AppServices = Annotated[Services, Depends(get_services)]


def _disabled() -> Response:
    return error_response(503, "telemetry_disabled", "telemetry is off (OTEL_SDK_DISABLED=true)")


def telemetry_sections(telemetry: Telemetry | None) -> dict[str, Any]:
    """The `api` and `system` sections of the summary."""
    if telemetry is None:
        return {"api": {"telemetry": "disabled"}, "system": {"telemetry": "disabled"}}
    return {"api": api_section(telemetry), "system": system_section(telemetry)}


def api_view(services: Services) -> dict[str, Any] | Response:
    if services.telemetry is None:
        return _disabled()
    return api_section(services.telemetry)


def bottlenecks_view(services: Services, request_base_url: str) -> dict[str, Any] | Response:
    if services.telemetry is None:
        return _disabled()
    page = runbook_page(services.settings.runbook_base_url, request_base_url)
    return bottlenecks_report(services.telemetry, page)


@router.get("/performance", include_in_schema=False)
async def performance(services: AppServices) -> RedirectResponse:
    """The performance dashboard lives in Grafana; no HTML is served here."""
    return RedirectResponse(services.settings.grafana_dashboard_url, status_code=307)
