"""The simulator behind real HTTP, speaking the wire format HttpExchangeClient expects.

Run it as `market-exchange-sim --port 9100` and point `UPSTREAM_URL` at it to exercise the HTTP
path (connection pooling, timeouts, HTTP errors) without a real exchange. Beyond the exchange's
wire format it answers `GET /stats` (calls served per endpoint, shared by every app replica that
points at it) and `GET`/`PUT /conditions` (latency, jitter, error rate, changed while it runs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from app.upstream.client import UnknownSymbol, UpstreamError
from app.upstream.simulator import ExchangeSimulator, SimulatorConditions
from devstack.process import ManagedProcess, free_port

_CONDITIONS = ("latency_ms", "jitter_ms", "error_rate")


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

    async def stats(_: Request) -> Response:
        """Calls served per endpoint template: what a cache in front of it let through."""
        calls = dict(simulator.calls_by_endpoint)
        return _json({"calls": calls, "total": sum(calls.values())})

    async def conditions(request: Request) -> Response:
        """Change latency, jitter or error rate while it runs (a slow or failing exchange)."""
        current = simulator.conditions
        if request.method == "PUT":
            try:
                body = orjson.loads(await request.body())
                changes = {k: float(body[k]) for k in _CONDITIONS if k in body}
            except (orjson.JSONDecodeError, TypeError, ValueError) as exc:
                return _json({"error": "invalid conditions", "detail": str(exc)}, 400)
            if any(v < 0 for v in changes.values()) or changes.get("error_rate", 0.0) > 1:
                detail = "latency and jitter >= 0, error rate in 0..1"
                return _json({"error": "invalid conditions", "detail": detail}, 400)
            for name, value in changes.items():
                setattr(current, name, value)
        return _json({name: getattr(current, name) for name in _CONDITIONS})

    app = Starlette(
        routes=[
            Route("/tickers", tickers),
            Route("/tickers/{symbol}", ticker),
            Route("/history/{symbol}", history),
            Route("/stats", stats),
            Route("/conditions", conditions, methods=["GET", "PUT"]),
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


def simulator_process(
    *,
    port: int | None = None,
    latency_ms: float = 20.0,
    jitter_ms: float = 10.0,
    log_path: Path | None = None,
) -> ManagedProcess:
    """`market-exchange-sim` as a child process: one exchange several app replicas share."""
    port = port or free_port()
    argv = [sys.executable, "-c", "from devstack.exchange_sim import main; main()"]
    argv += ["--port", str(port), "--latency-ms", str(latency_ms), "--jitter-ms", str(jitter_ms)]
    return ManagedProcess("exchange-sim", argv, "127.0.0.1", port, log_path)
