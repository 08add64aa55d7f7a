"""A local OTLP/HTTP receiver: real HTTP, real protobuf decoding (opentelemetry-proto).

It stands in for the Collector, which cannot run here, and keeps every request it decoded.
Modes: "ok" answers 200, "error" answers 503, "hang" holds the request open until stopped.
"""

from __future__ import annotations

import asyncio
import gzip
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric
from opentelemetry.proto.trace.v1.trace_pb2 import Span
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from devstack.process import free_port, wait_for_port


def attributes(pairs: Any) -> dict[str, Any]:
    """KeyValue list -> plain dict."""
    out: dict[str, Any] = {}
    for kv in pairs:
        assert isinstance(kv, KeyValue)
        value: AnyValue = kv.value
        kind = value.WhichOneof("value")
        out[kv.key] = getattr(value, kind) if kind else None
    return out


class OtlpReceiver:
    def __init__(self, mode: str = "ok") -> None:
        self.mode = mode
        self.port = free_port()
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.requests = 0
        self._release = threading.Event()
        app = Starlette(
            routes=[
                Route("/v1/traces", self._traces, methods=["POST"]),
                Route("/v1/metrics", self._metrics, methods=["POST"]),
            ]
        )
        self._server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error")
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _body(self, request: Request) -> bytes | Response:
        self.requests += 1
        if self.mode == "hang":
            await asyncio.to_thread(self._release.wait, 30)
            return Response(status_code=503)
        if self.mode == "error":
            return Response(status_code=503)
        body = await request.body()
        if request.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        return body

    async def _traces(self, request: Request) -> Response:
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        self.traces.append(ExportTraceServiceRequest.FromString(body))
        return Response(
            ExportTraceServiceResponse().SerializeToString(),
            media_type="application/x-protobuf",
        )

    async def _metrics(self, request: Request) -> Response:
        body = await self._body(request)
        if isinstance(body, Response):
            return body
        self.metrics.append(ExportMetricsServiceRequest.FromString(body))
        return Response(
            ExportMetricsServiceResponse().SerializeToString(),
            media_type="application/x-protobuf",
        )

    def spans(self) -> Iterator[tuple[dict[str, Any], Span]]:
        for request in self.traces:
            for resource_spans in request.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        yield resource, span

    def metric_list(self) -> Iterator[tuple[dict[str, Any], Metric]]:
        for request in self.metrics:
            for resource_metrics in request.resource_metrics:
                resource = attributes(resource_metrics.resource.attributes)
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        yield resource, metric

    def scoped_metrics(self) -> Iterator[tuple[dict[str, Any], dict[str, str], Metric]]:
        """(resource attributes, instrumentation scope, metric) of every metric received."""
        for request in self.metrics:
            for resource_metrics in request.resource_metrics:
                resource = attributes(resource_metrics.resource.attributes)
                for scope_metrics in resource_metrics.scope_metrics:
                    scope = {
                        "otel_scope_name": scope_metrics.scope.name,
                        "otel_scope_version": scope_metrics.scope.version,
                        "otel_scope_schema_url": scope_metrics.schema_url,
                    }
                    for metric in scope_metrics.metrics:
                        yield resource, scope, metric

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("the receiver never got what was expected")
            time.sleep(0.05)

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        wait_for_port("127.0.0.1", self.port)
        return self

    def __exit__(self, *exc: object) -> None:
        self._release.set()
        self._server.should_exit = True
        self._thread.join(5)
