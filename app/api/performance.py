"""Request, system and threshold views of the monitoring API, read from the telemetry pipeline.

They answer 503 with a JSON reason when telemetry is off (`OTEL_SDK_DISABLED=true`): the numbers
they would show are the instruments' own.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from app.api.runbooks import runbook_page
from app.errors import error_response
from app.services import Services, get_services
from telemetry.report import api_section, bottlenecks_report, system_section
from telemetry.runtime import Telemetry

router = APIRouter(tags=["monitoring"])
AppServices = Annotated[Services, Depends(get_services)]
PREFIX = "/api/monitoring/performance"


def _disabled() -> Response:
    return error_response(503, "telemetry_disabled", "telemetry is off (OTEL_SDK_DISABLED=true)")


def telemetry_sections(telemetry: Telemetry | None) -> dict[str, Any]:
    """The `api` and `system` sections of the summary."""
    if telemetry is None:
        return {"api": {"telemetry": "disabled"}, "system": {"telemetry": "disabled"}}
    return {"api": api_section(telemetry), "system": system_section(telemetry)}


@router.get(f"{PREFIX}/metrics/api", response_model=None)
async def metrics_api(services: AppServices) -> dict[str, Any] | Response:
    """Requests, errors and latency quantiles per route template, since start."""
    if services.telemetry is None:
        return _disabled()
    return api_section(services.telemetry)


@router.get(f"{PREFIX}/bottlenecks", response_model=None)
async def bottlenecks(request: Request, services: AppServices) -> dict[str, Any] | Response:
    """Which alert thresholds are breached now, judged like the alert rules judge them."""
    if services.telemetry is None:
        return _disabled()
    page = runbook_page(services.settings.runbook_base_url, str(request.base_url))
    return bottlenecks_report(services.telemetry, page)


@router.get("/performance", include_in_schema=False)
async def performance(services: AppServices) -> RedirectResponse:
    """The performance dashboard lives in Grafana; no HTML is served here."""
    return RedirectResponse(services.settings.grafana_dashboard_url, status_code=307)
