"""A real Alertmanager, with the committed configuration, notifies the app under uvicorn: the
notification validates, lands in the history and reaches a WebSocket subscriber of `alerts`."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.app.ws.live import LiveServer, client, recv_json, subscribe
from tests.conftest import make_settings
from tests.support.alertmanager import running_alertmanager

pytestmark = [pytest.mark.alertmanager, pytest.mark.server]

LABELS = {
    "alertname": "MarketApiMemoryHigh",
    "severity": "warning",
    "job": "market-api",
    "instance": "127.0.0.1:8000",
}
ANNOTATIONS = {
    "summary": "Market API resident memory is above 150MiB.",
    "runbook_url": "docs/runbooks.md#marketapimemoryhigh",
}


async def test_notification_reaches_history_and_websocket() -> None:
    settings = make_settings(gc_freeze=False, ws_feed_interval=3600.0)
    with LiveServer(settings) as server:
        async with client(server.url) as ws:
            await subscribe(ws, "alerts")
            with running_alertmanager(f"{server.http}/api/alerts/webhook") as alertmanager:
                await asyncio.to_thread(alertmanager.fire, LABELS, ANNOTATIONS)
                # group_wait of the committed config (10s) plus delivery; a liveness bound only.
                update = await recv_json(ws, timeout=60.0)
        async with httpx.AsyncClient(base_url=server.http) as http:
            recent = (await http.get("/api/alerts/recent")).json()

    assert update["topic"] == "alerts"
    notification = update["data"]
    assert notification["version"] == "4"
    assert notification["status"] == "firing"
    assert notification["receiver"] == "ticket"
    assert notification["groupLabels"] == {"alertname": "MarketApiMemoryHigh", "job": "market-api"}
    [alert] = notification["alerts"]
    assert alert["labels"] == LABELS
    assert alert["annotations"] == ANNOTATIONS
    assert alert["status"] == "firing"
    assert recent["notifications"] == [notification]
