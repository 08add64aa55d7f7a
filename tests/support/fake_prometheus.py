"""A local HTTP server that answers like Prometheus's HTTP API, for tests of query clients.

It speaks the documented wire format (`{"status": "success", "data": {"resultType": ...}}`,
sample values as strings, errors as `{"status": "error", "errorType": "bad_data", ...}` with 400)
for the three endpoints the dashboard tools use, and records every request so a test can check
exactly what a client sent. Each known expression has fixed series; anything else is refused as
Prometheus refuses PromQL it cannot parse.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

import orjson

VERSION: Final = "2.42.0"


@dataclass(frozen=True, slots=True)
class FakeSeries:
    labels: Mapping[str, str]
    value: float


@dataclass(frozen=True, slots=True)
class Request:
    path: str
    params: Mapping[str, str]


class FakePrometheus:
    """`with FakePrometheus({expr: [FakeSeries(...)]}) as prom:` serves on `prom.url`. A range
    query answers each series' value at every step from start to end."""

    def __init__(self, series: Mapping[str, Sequence[FakeSeries]]) -> None:
        self.series = dict(series)
        self.requests: list[Request] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def queries(self, path: str) -> list[str]:
        return [r.params["query"] for r in self.requests if r.path == path]

    def __enter__(self) -> FakePrometheus:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def answer(self, path: str, params: Mapping[str, str]) -> tuple[int, dict[str, Any]]:
        self.requests.append(Request(path, dict(params)))
        if path == "/api/v1/status/buildinfo":
            return 200, {"status": "success", "data": {"version": VERSION, "revision": "fake"}}
        if path not in ("/api/v1/query", "/api/v1/query_range"):
            return 404, {"status": "error", "errorType": "not_found", "error": "no such path"}
        expr = params.get("query", "")
        if expr not in self.series:
            return 400, {
                "status": "error",
                "errorType": "bad_data",
                "error": f'1:1: parse error: unknown expression "{expr}"',
            }
        if path == "/api/v1/query":
            at = float(params.get("time", "0"))
            result = [
                {"metric": dict(s.labels), "value": [at, _sample(s.value)]}
                for s in self.series[expr]
            ]
            return 200, {"status": "success", "data": {"resultType": "vector", "result": result}}
        start, end, step = (float(params[k]) for k in ("start", "end", "step"))
        stamps = [start + i * step for i in range(int((end - start) / step) + 1)]
        matrix = [
            {"metric": dict(s.labels), "values": [[t, _sample(s.value)] for t in stamps]}
            for s in self.series[expr]
        ]
        return 200, {"status": "success", "data": {"resultType": "matrix", "result": matrix}}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                status, body = fake.answer(parts.path, dict(parse_qsl(parts.query)))
                payload = orjson.dumps(body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler


def _sample(value: float) -> str:
    """Prometheus writes sample values as strings, in Go's float format."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value)) if value != int(value) else str(int(value))
