"""Alertmanager's webhook and the recent alerts it delivered.

`POST /api/alerts/webhook` is the receiver every route of `alerts/alertmanager.yml` posts to;
`GET /api/alerts/recent` lists what arrived, newest first. Each accepted notification is also
pushed to the `alerts` WebSocket topic (wired in the lifespan), so dashboards see alerts live.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError

from app.alerting import AlertHistory, WebhookPayload
from app.api.responses import json_bytes
from app.errors import error_response
from app.services import get_settings, services_of
from app.settings import Settings

router = APIRouter(prefix="/api/alerts", tags=["alerts"])

MAX_BODY_BYTES: Final = 1024 * 1024
"""Largest webhook body read; 50 alerts (the configured `max_alerts`) need far less."""
MAX_LIMIT: Final = 10_000


async def get_alert_history(request: Request) -> AlertHistory:
    return services_of(request).alerts


History = Annotated[AlertHistory, Depends(get_alert_history)]
AppSettings = Annotated[Settings, Depends(get_settings)]

_WEBHOOK_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": WebhookPayload.model_json_schema(by_alias=True, mode="validation")
            }
        },
    }
}


def _unauthorized(detail: str) -> Response:
    return error_response(401, "unauthorized", detail, {"WWW-Authenticate": "Bearer"})


def _check_token(request: Request, settings: Settings) -> Response | None:
    """None if the caller may post; the 401 answer otherwise."""
    expected = settings.alert_webhook_token.get_secret_value()
    if not expected:
        return None
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not presented.strip():
        return _unauthorized("a bearer token is required")
    if not hmac.compare_digest(presented.strip().encode(), expected.encode()):
        return _unauthorized("the bearer token is not valid")
    return None


async def _read_body(request: Request) -> bytes | None:
    """The body, or None once it exceeds MAX_BODY_BYTES (never buffered beyond that)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(body: bytes) -> WebhookPayload:
    try:
        return WebhookPayload.model_validate_json(body)
    except ValidationError as exc:
        # Same 422 body as every other invalid request (app/errors.py).
        errors = [
            {"loc": ("body", *e["loc"]), "msg": e["msg"], "type": e["type"]}
            for e in exc.errors(include_url=False, include_input=False)
        ]
        raise RequestValidationError(errors) from None


@router.post(
    "/webhook",
    openapi_extra=_WEBHOOK_BODY,
    responses={401: {"description": "Missing or wrong bearer token"}},
)
async def webhook(request: Request, history: History, settings: AppSettings) -> Response:
    """Receive one Alertmanager notification (webhook payload version 4)."""
    denied = _check_token(request, settings)
    if denied is not None:
        return denied
    body = await _read_body(request)
    if body is None:
        return error_response(413, "payload_too_large", f"the body exceeds {MAX_BODY_BYTES} bytes")
    entry = await history.record(_parse(body))
    return json_bytes({"id": entry["id"], "alerts": len(entry["alerts"])})


@router.get("/recent")
async def recent(
    history: History,
    limit: Annotated[int | None, Query(ge=1, le=MAX_LIMIT)] = None,
) -> Response:
    """The notifications received most recently, newest first."""
    return json_bytes(
        {
            "notifications": history.recent(limit),
            "capacity": history.capacity,
            "received": history.received,
        }
    )
