"""The dashboard protocol: client frames parsed and checked, server frames built.

Client frames are JSON text: subscribe / unsubscribe with a list of topics, or ping. Anything else
is an `InvalidFrame` carrying a bounded kind (a metric label), a reason for the client and the
close code to use once the client has sent too many of them. docs/websocket.md is the contract.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

import orjson

from app.ws.topics import MAX_TOPIC_LENGTH

#: The endpoint's path, and the route template telemetry sees.
ROUTE: Final = "/ws/dashboard"

Op = Literal["subscribe", "unsubscribe", "ping"]
OPS: Final[frozenset[str]] = frozenset({"subscribe", "unsubscribe", "ping"})
INVALID_OP: Final = "invalid"

# Close codes (RFC 6455, section 7.4.1).
NORMAL: Final = 1000
GOING_AWAY: Final = 1001
UNSUPPORTED_DATA: Final = 1003
POLICY_VIOLATION: Final = 1008
MESSAGE_TOO_BIG: Final = 1009
INTERNAL_ERROR: Final = 1011
TRY_AGAIN_LATER: Final = 1013

#: Kinds of refused client frames; bounded, they are metric labels.
INVALID_KINDS: Final = frozenset(
    {"binary", "malformed_json", "not_an_object", "unknown_op", "bad_topics", "too_big"}
)

#: An ASGI send event, built once and handed to every writer that sends it.
Message = dict[str, Any]


class InvalidFrame(ValueError):
    def __init__(self, kind: str, reason: str, close_code: int = POLICY_VIOLATION) -> None:
        assert kind in INVALID_KINDS
        super().__init__(reason)
        self.kind = kind
        self.reason = reason
        self.close_code = close_code


@dataclass(frozen=True, slots=True)
class ClientFrame:
    op: Op
    topics: tuple[str, ...] = ()


def parse_client_frame(text: str, max_topics: int) -> ClientFrame:
    """Parse one text frame; raises InvalidFrame with a reason the client can act on."""
    try:
        body = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise InvalidFrame("malformed_json", "frame is not valid JSON") from None
    if not isinstance(body, dict):
        raise InvalidFrame("not_an_object", "frame must be a JSON object with an 'op' field")
    op = body.get("op")
    if op == "ping":
        return ClientFrame("ping")
    if op not in ("subscribe", "unsubscribe"):
        raise InvalidFrame("unknown_op", "'op' must be one of: subscribe, unsubscribe, ping")
    topics = body.get("topics")
    if not isinstance(topics, list) or not topics:
        raise InvalidFrame("bad_topics", "'topics' must be a non-empty list of topic names")
    if len(topics) > max_topics:
        raise InvalidFrame("bad_topics", f"at most {max_topics} topics per frame")
    for topic in topics:
        if not isinstance(topic, str) or not 0 < len(topic) <= MAX_TOPIC_LENGTH:
            raise InvalidFrame(
                "bad_topics", f"topics are strings of 1 to {MAX_TOPIC_LENGTH} characters"
            )
    return ClientFrame("subscribe" if op == "subscribe" else "unsubscribe", tuple(topics))


def text_message(payload: Any) -> Message:
    """An ASGI send event carrying `payload` as a JSON text frame, serialized once."""
    return {"type": "websocket.send", "text": orjson.dumps(payload).decode()}


def update_message(topic: str, data: Any) -> Message:
    return text_message({"topic": topic, "data": data})


def ack_message(request: Op, topics: tuple[str, ...], subscriptions: int) -> Message:
    return text_message(
        {"op": "ack", "request": request, "topics": list(topics), "subscriptions": subscriptions}
    )


def error_message(reason: str, **details: Any) -> Message:
    return text_message({"op": "error", "reason": reason, **details})


PONG: Final = text_message({"op": "pong"})
