"""An app exporting OTLP to a local receiver, for the tests of the OTLP and Collector paths."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx
import pytest

from app import __version__
from app.main import create_app
from app.services import Services
from app.settings import Settings
from telemetry.runtime import Telemetry, TelemetryConfig
from tests.support.app_client import running_app
from tests.support.otlp_receiver import OtlpReceiver


@contextmanager
def exporting_to_receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[OtlpReceiver]:
    """A receiver, and the OTEL_* variables that point the next app's exporters at it: metrics
    every 300 ms, spans within 100 ms of their end."""
    with OtlpReceiver() as rx:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", rx.endpoint)
        monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "300")
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
        yield rx


@asynccontextmanager
async def exporting_app(
    settings: Settings, keep_ratio: float = 0.0
) -> AsyncIterator[tuple[httpx.AsyncClient, Services]]:
    telemetry = Telemetry(
        TelemetryConfig(
            service_version=__version__,
            keep_slower_than_ms=100.0,
            keep_ratio=keep_ratio,
            loop_lag_interval=0.05,
        )
    )
    async with running_app(create_app(settings, telemetry=telemetry)) as pair:
        yield pair
