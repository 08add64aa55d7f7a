"""Socket spans and metrics, with real WebSocket clients against the app under uvicorn."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection

from app import __version__
from app.main import create_app
from telemetry.runtime import TelemetryConfig, build_telemetry
from tests.app.ws.live import (
    LiveServer,
    client,
    recv_json,
    recv_op,
    send_json,
    subscribe,
    until,
)
from tests.conftest import make_settings
from tests.telemetry.conftest import SpanCollector

pytestmark = pytest.mark.server


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name:
                labels = tuple(
                    sorted((k, v) for k, v in s.labels.items() if not k.startswith("otel_"))
                )
                out[labels] = s.value
    return out


async def test_socket_life_as_short_spans_and_metrics() -> None:
    spans = SpanCollector()
    telemetry = build_telemetry(
        TelemetryConfig(service_version=__version__, keep_ratio=1.0), span_sink=spans
    )
    settings = make_settings(ws_feed_interval=0.05)
    app = create_app(settings, telemetry=telemetry)
    with LiveServer(settings, app=app) as server:
        async with client(server.url) as ws:
            await subscribe(ws, "tickers.BTCUSDT")
            update = await asyncio.wait_for(_first_update(ws), 10)
            assert update["topic"] == "tickers.BTCUSDT"
            await send_json(ws, {"op": "ping"})
            await recv_op(ws, "pong")
            await send_json(ws, {"op": "dance"})
            await recv_op(ws, "error")
        await until(lambda: server.call(lambda: server.manager.stats.active_connections == 0))
        await until(
            lambda: server.call(lambda: any(s.name == "WS disconnect" for s in spans.spans))
        )
        async with httpx.AsyncClient() as http:
            text = (await http.get(server.http + "/metrics")).text

    names = spans.names()
    assert "WS connect /ws/dashboard" in names
    assert "WS ping /ws/dashboard" in names
    (sub,) = spans.named("WS subscribe /ws/dashboard")
    assert dict(sub.attributes or {})["websocket.topic_family"] == "tickers"
    assert sub.context is not None
    validation = [
        s
        for s in spans.spans
        if s.context is not None
        and s.context.trace_id == sub.context.trace_id
        and s.name.startswith("cache.")
    ]
    assert validation, "topic validation reads the cached ticker map as a child span"
    (invalid,) = [s for s in spans.spans if s.name.startswith("WS invalid")]
    assert dict(invalid.attributes or {})["error.type"]
    (bye,) = spans.named("WS disconnect")
    attrs = dict(bye.attributes or {})
    assert attrs["websocket.close_code"] == 1000
    duration = attrs["websocket.session.duration"]
    assert isinstance(duration, float)
    assert duration > 0
    assert all(
        (s.end_time or 0) - (s.start_time or 0) < 5e9
        for s in spans.spans
        if s.name.startswith("WS")
    ), "no span lives as long as the socket"

    assert samples(text, "websocket_connections_active") == {(): 0.0}
    assert (
        samples(text, "websocket_connections_closed_total")[(("websocket_close_code", "1000"),)]
        == 1
    )
    sent = samples(text, "websocket_messages_sent_total")
    assert sent[(("websocket_topic_family", "tickers"),)] >= 1
    received = samples(text, "websocket_messages_received_total")
    assert sum(received.values()) >= 3
    durations = samples(text, "websocket_session_duration_seconds_count")
    assert durations[(("websocket_close_code", "1000"),)] == 1


async def _first_update(ws: ClientConnection) -> dict[str, Any]:
    while True:
        body = await recv_json(ws)
        if "topic" in body:
            return body


async def test_a_vanished_client_is_counted_as_1006() -> None:
    """The close code label is the one the client saw, not uvicorn's "no status" (1005)."""
    spans = SpanCollector()
    telemetry = build_telemetry(
        TelemetryConfig(service_version=__version__, keep_ratio=1.0), span_sink=spans
    )
    settings = make_settings()
    app = create_app(settings, telemetry=telemetry)
    with LiveServer(settings, app=app) as server:
        async with client(server.url) as ws:
            await subscribe(ws, "alerts")
            assert ws.transport is not None
            ws.transport.abort()
        await until(
            lambda: server.call(lambda: any(s.name == "WS disconnect" for s in spans.spans))
        )
        async with httpx.AsyncClient() as http:
            text = (await http.get(server.http + "/metrics")).text
    (bye,) = spans.named("WS disconnect")
    assert dict(bye.attributes or {})["websocket.close_code"] == 1006
    closed = samples(text, "websocket_connections_closed_total")
    assert closed == {(("websocket_close_code", "1006"),): 1}
