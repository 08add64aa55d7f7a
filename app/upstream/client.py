"""The interface the service uses to reach an exchange, and the errors it may raise.

Routes turn these errors into 502/503 answers with a reason; nothing upstream becomes a 500.
"""

from __future__ import annotations

from typing import Protocol

from app.upstream.models import PriceHistory, Ticker


class UpstreamError(Exception):
    """The exchange could not give an answer."""

    status_code = 502

    def __init__(self, endpoint: str, reason: str) -> None:
        super().__init__(f"upstream {endpoint}: {reason}")
        self.endpoint = endpoint
        self.reason = reason


class UpstreamUnavailable(UpstreamError):
    """Refused, erroring or timed out: worth retrying later."""

    status_code = 503


class UpstreamBadResponse(UpstreamError):
    """Answered with something we cannot use."""

    status_code = 502


class UnknownSymbol(LookupError):
    def __init__(self, symbol: str) -> None:
        super().__init__(f"unknown symbol {symbol!r}")
        self.symbol = symbol


class ExchangeClient(Protocol):
    """Read-only market data. `calls` counts requests actually sent upstream."""

    @property
    def calls(self) -> int: ...

    async def tickers(self) -> list[Ticker]: ...

    async def ticker(self, symbol: str) -> Ticker:
        """Raises UnknownSymbol for a symbol the exchange does not list."""
        ...

    async def history(self, symbol: str, points: int) -> PriceHistory:
        """Raises UnknownSymbol for a symbol the exchange does not list."""
        ...

    async def close(self) -> None: ...
