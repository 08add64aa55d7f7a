"""Fast JSON responses for data that was validated when it was computed."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response

from app.market.models import ErrorBody

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "Unknown symbol"},
    422: {"model": ErrorBody, "description": "Malformed parameter"},
    502: {"model": ErrorBody, "description": "Upstream answered badly"},
    503: {"model": ErrorBody, "description": "Upstream unavailable"},
}


def json_bytes(payload: Any, status_code: int = 200) -> Response:
    """Serialize with orjson and skip FastAPI's second validation of the response model."""
    return Response(orjson.dumps(payload), status_code=status_code, media_type="application/json")
