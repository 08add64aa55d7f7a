"""The HTTP client against the simulator served by a real uvicorn over loopback."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest
import uvicorn

from app.upstream import (
    ExchangeSimulator,
    SimulatorConditions,
    UnknownSymbol,
    UpstreamBadResponse,
    UpstreamUnavailable,
)
from app.upstream.http import HttpExchangeClient
from devstack.exchange_sim import create_simulator_app
from devstack.process import free_port, wait_for_port

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def exchange() -> Iterator[tuple[str, ExchangeSimulator]]:
    sim = ExchangeSimulator(60, SimulatorConditions(0, 0, 0), seed=3)
    port = free_port()
    config = uvicorn.Config(
        create_simulator_app(sim), host="127.0.0.1", port=port, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    wait_for_port("127.0.0.1", port)
    yield f"http://127.0.0.1:{port}", sim
    server.should_exit = True
    thread.join(5)


async def test_reads_tickers_ticker_and_history(exchange: tuple[str, ExchangeSimulator]) -> None:
    url, _ = exchange
    client = HttpExchangeClient(url)
    try:
        tickers = await client.tickers()
        assert len(tickers) == 60
        btc = await client.ticker("BTCUSDT")
        assert btc.symbol == "BTCUSDT"
        history = await client.history("BTCUSDT", 25)
        assert len(history.closes) == 25
        with pytest.raises(UnknownSymbol):
            await client.ticker("NOPE")
        assert client.calls == 4
    finally:
        await client.close()


async def test_exchange_errors_become_upstream_unavailable(
    exchange: tuple[str, ExchangeSimulator],
) -> None:
    url, sim = exchange
    client = HttpExchangeClient(url)
    sim.conditions.error_rate = 1.0
    try:
        with pytest.raises(UpstreamUnavailable, match="HTTP 503"):
            await client.tickers()
    finally:
        sim.conditions.error_rate = 0.0
        await client.close()


async def test_timeout_and_refused_connection(exchange: tuple[str, ExchangeSimulator]) -> None:
    url, sim = exchange
    sim.conditions.latency_ms = 500
    slow = HttpExchangeClient(url, timeout=0.1)
    try:
        with pytest.raises(UpstreamUnavailable, match="timed out"):
            await slow.tickers()
    finally:
        sim.conditions.latency_ms = 0
        await slow.close()
    refused = HttpExchangeClient(f"http://127.0.0.1:{free_port()}")
    try:
        with pytest.raises(UpstreamUnavailable, match="connection failed"):
            await refused.tickers()
    finally:
        await refused.close()


async def test_garbage_payload_is_a_bad_response() -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        body = b'[{"symbol": 1}]'
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(garbage, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = HttpExchangeClient(f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(UpstreamBadResponse, match="invalid payload"):
            await client.tickers()
    finally:
        await client.close()
        server.close()
        await server.wait_closed()
