"""Pick the upstream from settings: the HTTP client if a URL is set, else the simulator."""

from __future__ import annotations

from app.settings import Settings
from app.upstream.client import ExchangeClient
from app.upstream.http import HttpExchangeClient
from app.upstream.simulator import ExchangeSimulator, SimulatorConditions


def build_exchange_client(settings: Settings) -> ExchangeClient:
    if settings.upstream_url:
        return HttpExchangeClient(settings.upstream_url, timeout=settings.upstream_timeout)
    return ExchangeSimulator(
        settings.upstream_symbols,
        SimulatorConditions(
            latency_ms=settings.upstream_latency_ms,
            jitter_ms=settings.upstream_jitter_ms,
            error_rate=settings.upstream_error_rate,
        ),
        seed=settings.upstream_seed,
    )
