"""Exchange client over HTTP, for a real exchange gateway or the simulator served over HTTP.

Wire format (JSON): `GET /tickers` -> [Ticker], `GET /tickers/{symbol}` -> Ticker or 404,
`GET /history/{symbol}?points=N` -> PriceHistory. Connections are pooled and bounded; every call
has a timeout; every failure becomes an UpstreamError with a reason.
"""

from __future__ import annotations

from typing import Any, TypeVar

import httpx
from pydantic import TypeAdapter, ValidationError

from app.upstream.client import (
    UnknownSymbol,
    UpstreamBadResponse,
    UpstreamUnavailable,
)
from app.upstream.models import PriceHistory, Ticker

T = TypeVar("T")
_TICKERS = TypeAdapter(list[Ticker])
_TICKER = TypeAdapter(Ticker)
_HISTORY = TypeAdapter(PriceHistory)


class HttpExchangeClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 2.0,
        max_connections: int = 20,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=10),
            transport=transport,
        )
        self._calls = 0

    @property
    def calls(self) -> int:
        return self._calls

    async def tickers(self) -> list[Ticker]:
        body = await self._get("/tickers", "/tickers")
        return self._parse(_TICKERS, body, "/tickers")

    async def ticker(self, symbol: str) -> Ticker:
        body = await self._get(f"/tickers/{symbol}", "/tickers/{symbol}", symbol)
        return self._parse(_TICKER, body, "/tickers/{symbol}")

    async def history(self, symbol: str, points: int) -> PriceHistory:
        body = await self._get(
            f"/history/{symbol}", "/history/{symbol}", symbol, params={"points": points}
        )
        return self._parse(_HISTORY, body, "/history/{symbol}")

    async def close(self) -> None:
        await self._http.aclose()

    async def _get(
        self,
        path: str,
        endpoint: str,
        symbol: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> bytes:
        self._calls += 1
        try:
            response = await self._http.get(path, params=params)
        except httpx.TimeoutException:
            raise UpstreamUnavailable(endpoint, "timed out") from None
        except httpx.HTTPError as exc:
            raise UpstreamUnavailable(endpoint, f"connection failed: {type(exc).__name__}") from exc
        if response.status_code == 404 and symbol is not None:
            raise UnknownSymbol(symbol)
        if response.status_code >= 500 or response.status_code == 429:
            raise UpstreamUnavailable(endpoint, f"HTTP {response.status_code}")
        if response.status_code != 200:
            raise UpstreamBadResponse(endpoint, f"HTTP {response.status_code}")
        return response.content

    @staticmethod
    def _parse(adapter: TypeAdapter[T], body: bytes, endpoint: str) -> T:
        try:
            return adapter.validate_json(body)
        except ValidationError as exc:
            detail = f"invalid payload: {exc.error_count()} errors"
            raise UpstreamBadResponse(endpoint, detail) from exc
