"""Server spans and the request-duration histogram, through the real middleware."""

from __future__ import annotations

import random
import string

from opentelemetry.trace import SpanKind, StatusCode

from tests.telemetry.conftest import traced_app

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


async def test_span_named_after_the_route_template_with_semconv_attributes() -> None:
    async with traced_app() as t:
        assert (await t.client.get("/api/market/tickers/ethusdt")).status_code == 200
        (span,) = t.spans.named("GET /api/market/tickers/{symbol}")
        assert span.kind is SpanKind.SERVER
        assert span.parent is None
        attrs = dict(span.attributes or {})
        assert attrs["http.request.method"] == "GET"
        assert attrs["http.route"] == "/api/market/tickers/{symbol}"
        assert attrs["http.response.status_code"] == 200
        assert attrs["url.path"] == "/api/market/tickers/ethusdt"
        assert span.status.status_code is StatusCode.UNSET
        samples = await t.samples("http_server_request_duration_seconds_count")
        routes = {
            (
                s.labels["http_route"],
                s.labels["http_response_status_code"],
                s.labels["http_request_method"],
            )
            for s in samples
        }
        assert ("/api/market/tickers/{symbol}", "200", "GET") in routes


async def test_histogram_uses_the_semconv_buckets() -> None:
    async with traced_app() as t:
        await t.client.get("/api/market/movers")
        buckets = await t.samples("http_server_request_duration_seconds_bucket")
        bounds = sorted(
            {
                float(s.labels["le"])
                for s in buckets
                if s.labels["http_route"] == "/api/market/movers"
            }
        )
        assert bounds == [
            0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
            float("inf"),
        ]  # fmt: skip


async def test_ten_thousand_random_paths_add_no_series() -> None:
    async with traced_app(keep_ratio=0.0) as t:
        await t.client.get("/nope")
        await t.client.get("/metrics")  # the scrape's own series exists from now on
        before = len(await t.samples("http_server_request_duration_seconds_count"))
        rng = random.Random(1)
        for _ in range(10_000):
            path = "/" + "".join(rng.choices(string.ascii_lowercase, k=12))
            assert (await t.client.get(path)).status_code == 404
        samples = await t.samples("http_server_request_duration_seconds_count")
        assert len(samples) == before
        unmatched = [s for s in samples if s.labels["http_route"] == "unmatched"]
        assert unmatched[0].value == 10_001


async def test_incoming_traceparent_continues_the_trace() -> None:
    async with traced_app() as t:
        await t.client.get("/api/market/movers", headers={"traceparent": TRACEPARENT})
        (span,) = t.spans.named("GET /api/market/movers")
        assert span.context is not None
        assert span.parent is not None
        assert span.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
        assert span.parent.span_id == 0xB7AD6B7169203331
        assert span.parent.is_remote


async def test_unsampled_parent_is_respected() -> None:
    unsampled = TRACEPARENT[:-2] + "00"
    async with traced_app() as t:
        await t.client.get("/api/market/movers", headers={"traceparent": unsampled})
        assert t.spans.spans == []


async def test_server_errors_are_kept_and_marked() -> None:
    async with traced_app(make_settings_error(), keep_ratio=0.0) as t:
        response = await t.client.get("/api/dashboard/overview")
        assert response.status_code == 503
        (span,) = t.spans.named("GET /api/dashboard/overview")
        assert span.status.status_code is StatusCode.ERROR
        assert dict(span.attributes or {})["sampling.keep_reason"] == "error"


async def test_fast_requests_are_dropped_at_ratio_zero_slow_ones_kept() -> None:
    async with traced_app(keep_ratio=0.0, slower_than_ms=100.0) as t:
        for _ in range(5):
            await t.client.get("/api/market/tickers/BTCUSDT")
        assert t.spans.named("GET /api/market/tickers/{symbol}") == []
    slow = make_settings_error(error_rate=0.0, latency_ms=150.0)
    async with traced_app(slow, keep_ratio=0.0, slower_than_ms=100.0) as t:
        await t.client.get("/api/market/movers")  # cold cache: one slow upstream call
        (span,) = t.spans.named("GET /api/market/movers")
        assert dict(span.attributes or {})["sampling.keep_reason"] == "slow"
        upstream = t.spans.named("upstream GET /tickers")
        assert len(upstream) == 1
        assert upstream[0].parent is not None
        assert span.context is not None
        assert upstream[0].parent.span_id == span.context.span_id


async def test_metrics_endpoint_is_measured_but_not_traced() -> None:
    async with traced_app() as t:
        await t.client.get("/metrics")
        await t.client.get("/metrics")
        assert t.spans.named("GET /metrics") == []
        samples = await t.samples("http_server_request_duration_seconds_count")
        assert any(s.labels["http_route"] == "/metrics" for s in samples)


async def test_active_requests_return_to_zero() -> None:
    async with traced_app() as t:
        await t.client.get("/api/market/movers")
        samples = await t.samples("http_server_active_requests")
        # The scrape itself is the one request in flight.
        assert sum(s.value for s in samples) == 1


def make_settings_error(error_rate: float = 1.0, latency_ms: float = 1.0):  # type: ignore[no-untyped-def]
    from tests.conftest import make_settings

    return make_settings(upstream_error_rate=error_rate, upstream_latency_ms=latency_ms)
