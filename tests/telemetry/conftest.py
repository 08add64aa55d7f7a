"""Apps with a telemetry pipeline whose spans land in memory and whose metrics are parsed from
the same Prometheus registry `/metrics` serves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from opentelemetry.sdk.trace import ReadableSpan
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from app import __version__
from app.main import create_app
from app.services import Services
from app.settings import Settings
from telemetry.runtime import Telemetry, TelemetryConfig, build_telemetry
from tests.conftest import make_settings
from tests.support.app_client import running_app


class SpanCollector:
    """A span sink that keeps what the pipeline decided to export."""

    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def __call__(self, spans: Sequence[ReadableSpan]) -> None:
        self.spans.extend(spans)

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name]

    def names(self) -> list[str]:
        return [s.name for s in self.spans]


@dataclass
class Traced:
    client: httpx.AsyncClient
    services: Services
    spans: SpanCollector
    telemetry: Telemetry

    async def samples(self, name: str) -> list[Sample]:
        """Samples of one family, scraped through the real `/metrics` endpoint."""
        text = (await self.client.get("/metrics")).text
        out: list[Sample] = []
        for family in text_string_to_metric_families(text):
            out.extend(s for s in family.samples if s.name == name)
        return out


@asynccontextmanager
async def traced_app(
    settings: Settings | None = None,
    *,
    keep_ratio: float = 1.0,
    slower_than_ms: float = 100.0,
) -> AsyncIterator[Traced]:
    spans = SpanCollector()
    telemetry = build_telemetry(
        TelemetryConfig(
            service_version=__version__,
            keep_slower_than_ms=slower_than_ms,
            keep_ratio=keep_ratio,
            loop_lag_interval=0.05,
        ),
        span_sink=spans,
    )
    app = create_app(settings or make_settings(), telemetry=telemetry)
    async with running_app(app) as (client, services):
        yield Traced(client, services, spans, telemetry)
