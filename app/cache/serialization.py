"""Value encoding for the shared store: JSON through orjson, never pickle.

A shared memcached can be written by anything that reaches it; JSON can only ever decode into
plain data, so a poisoned entry cannot execute code in this process.
"""

from __future__ import annotations

from typing import Any

import orjson


class CacheDecodeError(ValueError):
    """A stored value is not valid JSON (written by something else, or truncated)."""


def encode(value: Any) -> bytes:
    """Serialize `value`, raising a TypeError that says what could not be encoded."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError as exc:
        raise TypeError(
            f"cache values must be JSON-serializable (dict, list, str, int, float, bool, None, "
            f"datetime, dataclass): {exc}"
        ) from exc


def decode(payload: bytes) -> Any:
    """Deserialize a stored value."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise CacheDecodeError(f"stored value is not JSON: {exc}") from exc
