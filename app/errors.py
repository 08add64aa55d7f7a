"""Every failure becomes a JSON answer with a status that says whose fault it is.

Unknown symbol -> 404, malformed input -> 422, upstream trouble -> 502/503 with the reason. A bug
still answers JSON (500), and is logged with its traceback.
"""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException
from starlette.requests import Request

from app.observability import TelemetryDisabled
from app.upstream.client import UnknownSymbol, UpstreamError

log = logging.getLogger(__name__)


def error_response(
    status: int, error: str, detail: str, headers: dict[str, str] | None = None, **extra: object
) -> Response:
    body = {"error": error, "detail": detail, **extra}
    return Response(
        orjson.dumps(body), status_code=status, media_type="application/json", headers=headers
    )


async def _unknown_symbol(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, UnknownSymbol)
    return error_response(404, "unknown_symbol", str(exc), symbol=exc.symbol)


async def _upstream(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, UpstreamError)
    headers = {"Retry-After": "1"} if exc.status_code == 503 else None
    return error_response(
        exc.status_code,
        "upstream_unavailable" if exc.status_code == 503 else "upstream_error",
        exc.reason,
        headers,
        endpoint=exc.endpoint,
    )


async def _telemetry_disabled(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, TelemetryDisabled)
    return error_response(503, "telemetry_disabled", exc.detail)


async def _validation(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    first = problems[0] if problems else {"loc": [], "msg": "invalid request"}
    where = ".".join(str(p) for p in first["loc"])
    return error_response(422, "invalid_request", f"{where}: {first['msg']}", errors=problems)


async def _http(_: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    headers = dict(exc.headers) if exc.headers else None
    return error_response(exc.status_code, error, str(exc.detail), headers)


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal_error", "unexpected server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(UnknownSymbol, _unknown_symbol)
    app.add_exception_handler(UpstreamError, _upstream)
    app.add_exception_handler(TelemetryDisabled, _telemetry_disabled)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(HTTPException, _http)
    app.add_exception_handler(Exception, _unexpected)
