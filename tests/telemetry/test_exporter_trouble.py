"""An OTLP endpoint that refuses, errors or hangs never slows requests or grows memory."""

from __future__ import annotations

import statistics
import time

import pytest

from devstack.process import free_port
from tests.conftest import make_settings
from tests.support.log_records import root_log_records
from tests.support.otlp_app import exporting_app
from tests.support.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.server

QUEUE = 64


async def _latencies(n: int = 300) -> tuple[list[float], dict[str, int], int]:
    async with exporting_app(make_settings(), keep_ratio=1.0) as (client, services):
        await client.get("/api/market/tickers/BTCUSDT")
        out = []
        for _ in range(n):
            start = time.perf_counter()
            assert (await client.get("/api/market/tickers/BTCUSDT")).status_code == 200
            out.append(time.perf_counter() - start)
        telemetry = services.telemetry
        assert telemetry is not None
        worker = telemetry._span_worker
        assert worker is not None
        return out, dict(telemetry.export_stats.dropped), worker.queued


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1]


@pytest.mark.parametrize("mode", ["refused", "error", "hang"])
async def test_requests_keep_their_latency(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", str(QUEUE))
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "16")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "200")

    with OtlpReceiver("ok") as healthy:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", healthy.endpoint)
        baseline, _, _ = await _latencies()

    with (
        OtlpReceiver("hang" if mode == "hang" else "error") as broken,
        root_log_records() as records,
    ):
        endpoint = f"http://127.0.0.1:{free_port()}" if mode == "refused" else broken.endpoint
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        troubled, dropped, queued = await _latencies()

    # Liveness bounds, generous for a noisy machine: the same order as a healthy exporter.
    base, bad = statistics.median(baseline), statistics.median(troubled)
    assert bad < 2 * base + 0.002, (bad, base)
    assert _p95(troubled) < 3 * _p95(baseline) + 0.010, (_p95(troubled), _p95(baseline))
    assert queued <= QUEUE
    assert dropped["traces"] > 0, "spans that could not be exported are counted"
    export_warnings = [r for r in records if r.name.startswith(("telemetry", "opentelemetry"))]
    assert len(export_warnings) < 20, [r.getMessage() for r in export_warnings]
