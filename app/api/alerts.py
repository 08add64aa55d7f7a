"""Alertmanager's webhook and the recent alerts it delivered.

`POST /api/alerts/webhook` is the receiver every route of `alerts/alertmanager.yml` posts to;
`GET /api/alerts/recent` lists what arrived, newest first. Each accepted notification is also
pushed to the `alerts` WebSocket topic (wired in the lifespan), so dashboards see alerts live:
with `REDIS_URL` set, the dashboards connected to every replica, whichever one Alertmanager
posted to (the history itself stays on that replica).

Only `application/json` is accepted: a web page can make a browser post `text/plain`, a form or
no content type to any address without asking (a CORS "simple request"), so without a token any
page a user visits could inject alerts; a JSON post from another origin needs a preflight that
this app never grants.
"""

from __future__ import annotations

import hmac
import logging
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError

from app.alerting import AlertHistory, NotificationTooLarge, WebhookPayload
from app.api.responses import json_bytes
from app.errors import error_response
from app.market.models import ErrorBody
from app.services import get_settings, services_of
from app.settings import Settings

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/alerts", tags=["alerts"])

MAX_LIMIT: Final = 10_000
JSON_MEDIA_TYPE: Final = "application/json"


async def get_alert_history(request: Request) -> AlertHistory:
    return services_of(request).alerts


History = Annotated[AlertHistory, Depends(get_alert_history)]
AppSettings = Annotated[Settings, Depends(get_settings)]


def _inline_definitions(schema: dict[str, Any]) -> dict[str, Any]:
    """The model's JSON schema with its `#/$defs/...` references replaced by what they name.

    Inside an OpenAPI document `#` is the document's root, where `$defs` does not exist: left
    as they are, the references point nowhere and clients cannot tell what the body must be.
    """
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return resolve(definitions[ref.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


_WEBHOOK_BODY: Final[dict[str, Any]] = {
    "requestBody": {
        "required": True,
        "content": {
            JSON_MEDIA_TYPE: {
                "schema": _inline_definitions(
                    WebhookPayload.model_json_schema(by_alias=True, mode="validation")
                )
            }
        },
    }
}


def warn_if_open(settings: Settings) -> None:
    """Say at start-up that anyone who can reach the app may post alerts."""
    if not settings.alert_webhook_token.get_secret_value():
        log.warning(
            "ALERT_WEBHOOK_TOKEN is not set: POST /api/alerts/webhook accepts notifications "
            "from any caller that can reach this port"
        )


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


def _is_json(request: Request) -> bool:
    media_type = request.headers.get("content-type", "").partition(";")[0]
    return media_type.strip().lower() == JSON_MEDIA_TYPE


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The body, or None once it exceeds `limit` bytes (never buffered beyond that)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
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


def _too_large(limit: int) -> Response:
    return error_response(413, "payload_too_large", f"the notification exceeds {limit} bytes")


@router.post(
    "/webhook",
    openapi_extra=_WEBHOOK_BODY,
    responses={
        401: {"model": ErrorBody, "description": "Missing or wrong bearer token"},
        413: {"model": ErrorBody, "description": "Notification over ALERT_NOTIFICATION_MAX_BYTES"},
        415: {"model": ErrorBody, "description": "Body not sent as application/json"},
        422: {"model": ErrorBody, "description": "Not an Alertmanager webhook payload"},
    },
)
async def webhook(request: Request, history: History, settings: AppSettings) -> Response:
    """Receive one Alertmanager notification (webhook payload version 4)."""
    denied = _check_token(request, settings)
    if denied is not None:
        return denied
    if not _is_json(request):
        return error_response(
            415, "unsupported_media_type", f"the body must be sent as {JSON_MEDIA_TYPE}"
        )
    limit = settings.alert_notification_max_bytes
    body = await _read_body(request, limit)
    if body is None:
        return _too_large(limit)
    try:
        entry = await history.record(_parse(body))
    except NotificationTooLarge:
        return _too_large(limit)
    return json_bytes({"id": entry["id"], "alerts": len(entry["alerts"])})


@router.get("/recent", responses={422: {"model": ErrorBody, "description": "Bad limit"}})
async def recent(
    history: History,
    limit: Annotated[int | None, Query(ge=1, le=MAX_LIMIT)] = None,
) -> Response:
    """The notifications received most recently, newest first (at most `max_bytes` of them)."""
    return json_bytes(
        {
            "notifications": history.recent(limit),
            "capacity": history.capacity,
            "received": history.received,
            "bytes": history.bytes,
            "max_bytes": history.max_bytes,
        }
    )
