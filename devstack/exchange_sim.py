"""The simulator behind real HTTP, speaking the wire format HttpExchangeClient expects.

Run it as `market-exchange-sim --port 9100` and point `UPSTREAM_URL` at it to exercise the HTTP
path (connection pooling, timeouts, HTTP errors) without a real exchange.
"""

from __future__ import annotations

import argparse

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.upstream.client import UnknownSymbol, UpstreamError
from app.upstream.simulator import ExchangeSimulator, SimulatorConditions


def _json(payload: object, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def create_simulator_app(simulator: ExchangeSimulator) -> Starlette:
    async def tickers(_: Request) -> Response:
        try:
            items = await simulator.tickers()
        except UpstreamError as exc:
            return _json({"error": exc.reason}, 503)
        return _json([t.model_dump() for t in items])

    async def ticker(request: Request) -> Response:
        try:
            item = await simulator.ticker(request.path_params["symbol"])
        except UnknownSymbol as exc:
            return _json({"error": str(exc)}, 404)
        except UpstreamError as exc:
            return _json({"error": exc.reason}, 503)
        return _json(item.model_dump())

    async def history(request: Request) -> Response:
        try:
            points = int(request.query_params.get("points", "100"))
        except ValueError:
            return _json({"error": "points must be an integer"}, 400)
        try:
            item = await simulator.history(request.path_params["symbol"], max(1, points))
        except UnknownSymbol as exc:
            return _json({"error": str(exc)}, 404)
        except UpstreamError as exc:
            return _json({"error": exc.reason}, 503)
        return _json(item.model_dump())

    app = Starlette(
        routes=[
            Route("/tickers", tickers),
            Route("/tickers/{symbol}", ticker),
            Route("/history/{symbol}", history),
        ]
    )
    app.state.simulator = simulator
    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description="Serve the exchange simulator over HTTP.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument("--symbols", type=int, default=60)
    parser.add_argument("--latency-ms", type=float, default=20.0)
    parser.add_argument("--jitter-ms", type=float, default=10.0)
    parser.add_argument("--error-rate", type=float, default=0.0)
    args = parser.parse_args(argv)
    simulator = ExchangeSimulator(
        args.symbols, SimulatorConditions(args.latency_ms, args.jitter_ms, args.error_rate)
    )
    uvicorn.run(create_simulator_app(simulator), host=args.host, port=args.port)
