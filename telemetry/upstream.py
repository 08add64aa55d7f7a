"""Upstream telemetry: a client span, a counter and a duration per exchange call."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer

from app.upstream.client import ExchangeClient, UnknownSymbol, UpstreamError
from app.upstream.models import PriceHistory, Ticker
from telemetry.instruments import Instruments
from telemetry.roots import parent_context

T = TypeVar("T")


class InstrumentedExchange:
    """Wraps any `ExchangeClient`; endpoint names are templates, never symbols."""

    def __init__(self, inner: ExchangeClient, tracer: Tracer, instruments: Instruments) -> None:
        self.inner = inner
        self._tracer = tracer
        self._requests = instruments.upstream_requests
        self._duration = instruments.upstream_duration

    @property
    def calls(self) -> int:
        return self.inner.calls

    async def tickers(self) -> list[Ticker]:
        return await self._call("/tickers", self.inner.tickers)

    async def ticker(self, symbol: str) -> Ticker:
        return await self._call("/tickers/{symbol}", lambda: self.inner.ticker(symbol))

    async def history(self, symbol: str, points: int) -> PriceHistory:
        return await self._call("/history/{symbol}", lambda: self.inner.history(symbol, points))

    async def close(self) -> None:
        await self.inner.close()

    async def _call(self, endpoint: str, fn: Callable[[], Awaitable[T]]) -> T:
        parent = parent_context()
        span = self._tracer.start_span(
            f"upstream GET {endpoint}",
            context=parent,
            kind=SpanKind.CLIENT,
            attributes={"upstream.endpoint": endpoint, "http.request.method": "GET"},
        )
        start = time.perf_counter()
        outcome = "success"
        try:
            return await fn()
        except UnknownSymbol:
            outcome = "not_found"
            raise
        except UpstreamError as exc:
            outcome = "error"
            span.set_status(Status(StatusCode.ERROR, exc.reason))
            span.set_attribute("error.type", type(exc).__name__)
            raise
        except BaseException as exc:
            outcome = "cancelled" if isinstance(exc, asyncio.CancelledError) else "error"
            span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            attributes = {"upstream.endpoint": endpoint, "outcome": outcome}
            span.set_attribute("outcome", outcome)
            context = trace.set_span_in_context(span, parent)
            self._requests.add(1, attributes, context=context)
            self._duration.record(time.perf_counter() - start, attributes, context=context)
            span.end()
