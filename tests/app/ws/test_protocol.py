from __future__ import annotations

import orjson
import pytest

from app.ws.inbound import MAX_CLOSE_REASON, close_reason
from app.ws.protocol import (
    INVALID_KINDS,
    PONG,
    ClientFrame,
    InvalidFrame,
    ack_message,
    error_message,
    parse_client_frame,
    update_message,
)


def test_valid_frames() -> None:
    assert parse_client_frame('{"op": "ping"}', 10) == ClientFrame("ping")
    assert parse_client_frame('{"op":"subscribe","topics":["alerts"]}', 10) == ClientFrame(
        "subscribe", ("alerts",)
    )
    frame = parse_client_frame('{"op":"unsubscribe","topics":["a","b"],"extra":1}', 10)
    assert frame == ClientFrame("unsubscribe", ("a", "b"))


@pytest.mark.parametrize(
    ("text", "kind"),
    [
        ("{nope", "malformed_json"),
        ("", "malformed_json"),
        ("[1, 2]", "not_an_object"),
        ('"ping"', "not_an_object"),
        ("{}", "unknown_op"),
        ('{"op": "PING"}', "unknown_op"),
        ('{"op": "publish", "topics": ["alerts"]}', "unknown_op"),
        ('{"op": "subscribe"}', "bad_topics"),
        ('{"op": "subscribe", "topics": []}', "bad_topics"),
        ('{"op": "subscribe", "topics": "alerts"}', "bad_topics"),
        ('{"op": "subscribe", "topics": [1]}', "bad_topics"),
        ('{"op": "subscribe", "topics": [""]}', "bad_topics"),
        ('{"op": "subscribe", "topics": ["' + "x" * 65 + '"]}', "bad_topics"),
        ('{"op": "unsubscribe", "topics": ["a", "b", "c", "d"]}', "bad_topics"),
    ],
)
def test_invalid_frames_say_why(text: str, kind: str) -> None:
    with pytest.raises(InvalidFrame) as info:
        parse_client_frame(text, 3)
    assert info.value.kind == kind
    assert info.value.kind in INVALID_KINDS
    assert info.value.reason
    assert info.value.close_code == 1008


def test_server_frames_are_asgi_text_events() -> None:
    update = update_message("tickers.BTCUSDT", {"price": 1.5})
    assert update["type"] == "websocket.send"
    assert orjson.loads(update["text"]) == {"topic": "tickers.BTCUSDT", "data": {"price": 1.5}}
    assert orjson.loads(PONG["text"]) == {"op": "pong"}
    ack = orjson.loads(ack_message("subscribe", ("alerts",), 3)["text"])
    assert ack == {"op": "ack", "request": "subscribe", "topics": ["alerts"], "subscriptions": 3}
    error = orjson.loads(error_message("unknown topic", topics=["x"])["text"])
    assert error == {"op": "error", "reason": "unknown topic", "topics": ["x"]}
    with pytest.raises(TypeError):
        update_message("alerts", {"when": object()})


def test_close_reasons_fit_a_close_frame() -> None:
    assert close_reason("short") == "short"
    long = close_reason("é" * 100)
    assert len(long.encode()) <= MAX_CLOSE_REASON
    assert long == "é" * (MAX_CLOSE_REASON // 2)
