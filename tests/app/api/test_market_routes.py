from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from app.main import create_app
from app.services import Services
from app.upstream import ExchangeSimulator
from app.upstream.http import HttpExchangeClient
from tests.conftest import make_settings
from tests.support.app_client import running_app

Api = tuple[httpx.AsyncClient, Services]
PATHS = ["/api/market/movers", "/api/dashboard/overview", "/api/market/tickers/BTCUSDT"]


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with running_app(create_app(make_settings())) as pair:
        yield pair


def assert_error(response: httpx.Response, status: int, error: str) -> dict[str, object]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, object] = response.json()
    assert body["error"] == error
    assert isinstance(body["detail"], str)
    assert body["detail"]
    return body


async def test_movers(api: Api) -> None:
    client, _ = api
    body = (await client.get("/api/market/movers", params={"limit": 5})).json()
    assert len(body["gainers"]) == len(body["losers"]) == 5
    changes = [m["change_pct_24h"] for m in body["gainers"]]
    assert changes == sorted(changes, reverse=True)
    assert body["gainers"][0]["change_pct_24h"] >= body["losers"][0]["change_pct_24h"]


@pytest.mark.parametrize("limit", ["0", "51", "ten", "-1"])
async def test_movers_rejects_bad_limits(api: Api, limit: str) -> None:
    client, _ = api
    body = assert_error(
        await client.get("/api/market/movers", params={"limit": limit}), 422, "invalid_request"
    )
    assert "limit" in str(body["detail"])


async def test_ticker_lookup(api: Api) -> None:
    client, _ = api
    assert (await client.get("/api/market/tickers/BTCUSDT")).json()["symbol"] == "BTCUSDT"
    assert (await client.get("/api/market/tickers/ethusdt")).json()["symbol"] == "ETHUSDT"
    body = assert_error(await client.get("/api/market/tickers/DOGEEUR"), 404, "unknown_symbol")
    assert body["symbol"] == "DOGEEUR"
    for bad in ["B", "BTC-USDT", "x" * 21, "BTC%20USDT"]:
        assert_error(await client.get(f"/api/market/tickers/{bad}"), 422, "invalid_request")


async def test_overview_and_regime(api: Api) -> None:
    client, services = api
    overview = (await client.get("/api/dashboard/overview")).json()
    assert overview["symbols"] == 60
    assert overview["advancers"] + overview["decliners"] + overview["unchanged"] == 60
    regime = (await client.get("/api/analysis/regime", params={"symbol": "solusdt"})).json()
    assert regime["symbol"] == "SOLUSDT"
    assert regime["window"] == 100
    assert regime["trend"] in {"up", "down", "sideways"}
    calls = services.upstream.calls
    assert_error(
        await client.get("/api/analysis/regime", params={"symbol": "NOPEUSDT"}),
        404,
        "unknown_symbol",
    )
    assert services.upstream.calls == calls  # rejected from the cached snapshot
    for params in [{"window": "9"}, {"window": "1001"}, {"symbol": "a b"}]:
        assert_error(
            await client.get("/api/analysis/regime", params=params), 422, "invalid_request"
        )


async def test_cache_spares_the_upstream(api: Api) -> None:
    client, services = api
    for _ in range(50):
        for path in PATHS:
            assert (await client.get(path)).status_code == 200
    assert services.upstream.calls <= 2  # one snapshot, maybe one more if its TTL ran out


async def test_upstream_failure_is_503_with_a_reason() -> None:
    async with running_app(create_app(make_settings(upstream_error_rate=1.0))) as (client, _):
        for path in PATHS:
            response = await client.get(path)
            body = assert_error(response, 503, "upstream_unavailable")
            assert "simulated" in str(body["detail"])
            assert response.headers["retry-after"] == "1"


async def test_upstream_garbage_is_502() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nnot json")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    try:
        app = create_app(make_settings(), upstream=HttpExchangeClient(url))
        async with running_app(app) as (client, _):
            assert_error(await client.get("/api/market/movers"), 502, "upstream_error")
    finally:
        server.close()
        await server.wait_closed()


async def test_unknown_paths_and_methods_answer_json(
    api: Api,
) -> None:
    client, _ = api
    assert_error(await client.get("/api/nowhere"), 404, "not_found")
    assert_error(await client.post("/api/market/movers"), 405, "method_not_allowed")


async def test_openapi_documents_the_models(api: Api) -> None:
    client, _ = api
    spec = (await client.get("/openapi.json")).json()
    schemas = spec["components"]["schemas"]
    for name in ["Movers", "Ticker", "MarketOverview", "Regime", "ErrorBody"]:
        assert name in schemas
    movers = spec["paths"]["/api/market/movers"]["get"]["responses"]
    assert movers["200"]["content"]["application/json"]["schema"]["$ref"].endswith("/Movers")
    assert {"404", "422", "503"} <= set(movers)


def test_a_second_app_has_its_own_state() -> None:
    a, b = create_app(make_settings()), create_app(make_settings())
    assert a is not b
    assert not hasattr(a.state, "services")


async def test_injected_upstream_is_used() -> None:
    sim = ExchangeSimulator(55, seed=1)
    sim.conditions.latency_ms = sim.conditions.jitter_ms = 0
    async with running_app(create_app(make_settings(), upstream=sim)) as (client, services):
        assert (await client.get("/api/dashboard/overview")).json()["symbols"] == 55
        assert services.upstream.calls == sim.calls
        assert sim.calls == 1
