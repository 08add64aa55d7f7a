from __future__ import annotations

import httpx
import pytest

from app.ws.summary import websocket_summary
from tests.app.ws.conftest import StartServer
from tests.app.ws.live import client, recv_json, send_json, subscribe, until


def test_summary_without_the_layer() -> None:
    assert websocket_summary(None) == {"enabled": False}


@pytest.mark.server
async def test_summary_reports_connections_subscriptions_and_messages(
    live_server: StartServer,
) -> None:
    server = live_server()
    async with client(server.url) as a, client(server.url) as b:
        await subscribe(a, "tickers.BTCUSDT", "tickers.ETHUSDT", "market.movers")
        await subscribe(b, "alerts", "tickers.BTCUSDT")
        await server.call(lambda: server.manager.broadcast("alerts", {"alert": "test"}))
        assert (await recv_json(b))["topic"] == "alerts"
        await send_json(b, ["not", "an", "object"])
        await recv_json(b)
        async with httpx.AsyncClient(base_url=server.http) as http:
            body = (await http.get("/api/monitoring/performance/summary")).json()

    assert set(body) >= {"cache", "websocket"}
    assert body["cache"]["backend"] == "memory"
    ws = body["websocket"]
    assert ws["active_connections"] == 2
    assert ws["subscriptions"] == {"tickers": 3, "market": 1, "alerts": 1}
    assert ws["topics"] == 4
    assert ws["by_family"]["alerts"] == {"sent": 1, "received": 0, "dropped": 0}
    # Frames whose topics span families count under "none", like pings and invalid frames.
    assert ws["by_family"]["none"]["received"] == 3
    assert ws["by_family"]["none"]["sent"] == 3  # two acks and one error
    assert ws["messages_sent"] == 4
    assert ws["invalid_messages"] == {"not_an_object": 1}
    assert ws["tasks"] == 2  # one writer per socket
    assert ws["accepting"] is True
    # One replica (no REDIS_URL): its own feed publishes, no broker.
    assert ws["fleet"] == {"enabled": False}
    assert ws["feed"]["publisher"] is True

    async def closed() -> bool:
        return server.manager.stats.active_connections == 0

    await until(closed)
    assert server.manager.stats.closed[1000] == 2
