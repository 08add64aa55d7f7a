from __future__ import annotations

import asyncio

from opentelemetry.trace import SpanKind, StatusCode

from tests.conftest import make_settings
from tests.telemetry.conftest import traced_app


async def test_upstream_calls_are_client_spans_and_counted() -> None:
    async with traced_app() as t:
        await t.client.get("/api/analysis/regime", params={"symbol": "BTCUSDT", "window": 50})
        names = t.spans.names()
        assert "upstream GET /tickers" in names
        (history,) = t.spans.named("upstream GET /history/{symbol}")
        assert history.kind is SpanKind.CLIENT
        assert dict(history.attributes or {})["upstream.endpoint"] == "/history/{symbol}"
        counts = {
            (s.labels["upstream_endpoint"], s.labels["outcome"]): s.value
            for s in await t.samples("upstream_requests_total")
        }
        assert counts == {("/tickers", "success"): 1, ("/history/{symbol}", "success"): 1}
        durations = await t.samples("upstream_request_duration_seconds_count")
        assert sum(s.value for s in durations) == 2


async def test_upstream_errors_are_error_spans() -> None:
    async with traced_app(make_settings(upstream_error_rate=1.0)) as t:
        assert (await t.client.get("/api/market/movers")).status_code == 503
        (span,) = t.spans.named("upstream GET /tickers")
        assert span.status.status_code is StatusCode.ERROR
        counts = {s.labels["outcome"]: s.value for s in await t.samples("upstream_requests_total")}
        assert counts == {"error": 1}


async def test_process_metrics_and_event_loop_lag() -> None:
    async with traced_app() as t:
        await asyncio.sleep(0.3)  # a few lag probes at 50 ms
        (rss,) = await t.samples("process_memory_usage_bytes")
        assert 10 * 2**20 < rss.value < 2**32
        (fds,) = await t.samples("process_open_file_descriptor_count")
        assert fds.value > 3
        (cpu,) = await t.samples("process_cpu_utilization")
        assert 0 <= cpu.value <= 1
        cpu_time = {
            s.labels["cpu_mode"]: s.value for s in await t.samples("process_cpu_time_seconds_total")
        }
        assert cpu_time["user"] > 0
        (lag_count,) = await t.samples("python_event_loop_lag_seconds_count")
        assert lag_count.value >= 3


async def test_event_loop_lag_sees_a_blocking_call() -> None:
    async with traced_app() as t:
        await asyncio.sleep(0.1)
        import time

        time.sleep(0.3)  # noqa: ASYNC251 (deliberately block the loop)
        await asyncio.sleep(0.1)
        buckets = {
            float(s.labels["le"]): s.value
            for s in await t.samples("python_event_loop_lag_seconds_bucket")
        }
        (count,) = await t.samples("python_event_loop_lag_seconds_count")
        assert count.value - buckets[0.1] >= 1  # at least one probe saw > 100 ms
        assert t.telemetry.loop_lag.max_recent >= 0.2
