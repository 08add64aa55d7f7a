"""Upstream exchange: the client interface, the built-in simulator and the HTTP client."""

from app.upstream.client import (
    ExchangeClient,
    UnknownSymbol,
    UpstreamBadResponse,
    UpstreamError,
    UpstreamUnavailable,
)
from app.upstream.models import PriceHistory, Ticker
from app.upstream.simulator import ExchangeSimulator, SimulatorConditions

__all__ = [
    "ExchangeClient",
    "ExchangeSimulator",
    "PriceHistory",
    "SimulatorConditions",
    "Ticker",
    "UnknownSymbol",
    "UpstreamBadResponse",
    "UpstreamError",
    "UpstreamUnavailable",
]
