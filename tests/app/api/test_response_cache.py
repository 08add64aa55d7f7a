"""Cached answers: stored bytes as they are, revalidation, and the path in front of routing."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest
from starlette.types import Scope

from app.api.response_cache import CachedView, ResponseCache, build_answer, etag_matches
from app.main import create_app
from app.services import Services
from tests.conftest import make_settings
from tests.support.app_client import running_app

Api = tuple[httpx.AsyncClient, Services]
CACHED = [
    "/api/market/movers",
    "/api/market/movers?limit=7",
    "/api/dashboard/overview",
    "/api/market/tickers/BTCUSDT",
    "/api/market/tickers/ethusdt",
    "/api/analysis/regime?symbol=BTCUSDT&window=50",
]


class _NoMarket:
    """Stands in for the market service once a test wants proof that routing was skipped."""

    def __getattr__(self, name: str) -> object:
        raise AssertionError(f"the route ran (market.{name})")


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    async with running_app(create_app(make_settings(), telemetry=None)) as pair:
        yield pair


def served_front(services: Services) -> None:
    services.market = _NoMarket()  # type: ignore[assignment]


@pytest.mark.parametrize("url", CACHED)
async def test_both_paths_answer_the_same_bytes_and_headers(api: Api, url: str) -> None:
    client, services = api
    routed = await client.get(url)
    assert routed.status_code == 200, routed.text
    served_front(services)
    front = await client.get(url)
    assert front.status_code == 200
    assert front.content == routed.content
    assert list(front.headers.keys()) == list(routed.headers.keys())
    assert front.headers["etag"] == routed.headers["etag"]
    assert front.headers["content-type"] == "application/json"
    assert int(front.headers["content-length"]) == len(front.content)
    assert orjson.loads(front.content)  # JSON, as sent by the route


async def test_answers_are_the_stored_bytes_and_the_same_json_as_the_service(api: Api) -> None:
    client, services = api
    body = (await client.get("/api/market/movers?limit=5")).content
    entry = await services.cache.get_entry("api", "movers:5")
    assert entry is not None
    assert body == entry.payload
    ticker = (await client.get("/api/market/tickers/btcusdt")).json()
    assert ticker == await services.market.ticker("BTCUSDT")


async def test_cache_control_is_the_remaining_ttl(api: Api) -> None:
    client, services = api
    ttl = services.cache.ttl_for("api")
    for _ in range(2):
        response = await client.get("/api/market/movers")
        directive, _, seconds = response.headers["cache-control"].partition("=")
        assert directive == "max-age"
        assert 0 <= int(seconds) <= ttl


async def test_if_none_match_gets_304_without_a_body_on_both_paths(api: Api) -> None:
    client, services = api
    first = await client.get("/api/dashboard/overview")
    etag = first.headers["etag"]
    for variant in (etag, f"W/{etag}", f'"other", {etag}', "*"):
        revalidated = await client.get(
            "/api/dashboard/overview", headers={"If-None-Match": variant}
        )
        assert revalidated.status_code == 304, variant
        assert revalidated.content == b""
        assert revalidated.headers["etag"] == etag
        assert revalidated.headers["cache-control"].startswith("max-age=")
        assert "content-type" not in revalidated.headers
    served_front(services)
    assert (
        await client.get("/api/dashboard/overview", headers={"If-None-Match": etag})
    ).status_code == 304
    stale = await client.get("/api/dashboard/overview", headers={"If-None-Match": '"other"'})
    assert stale.status_code == 200
    assert stale.content == first.content


async def test_route_path_answers_304_before_anything_was_remembered(api: Api) -> None:
    client, _ = api
    etag = (await client.get("/api/market/tickers/BTCUSDT")).headers["etag"]
    # Another spelling of the same answer: not remembered yet, so the route answers it.
    response = await client.get("/api/market/tickers/btcusdt", headers={"If-None-Match": etag})
    assert response.status_code == 304


async def test_invalid_parameters_are_never_served_from_cache(api: Api) -> None:
    client, services = api
    assert (await client.get("/api/market/movers?limit=50")).status_code == 200
    # An entry for an out-of-range limit exists (another caller stored it): still 422.
    await services.cache.set("api", "movers:51", {"gainers": [], "losers": []})
    for _ in range(2):
        for query in ("limit=51", "limit=0", "limit=ten", "limit=50&limit=x"):
            response = await client.get(f"/api/market/movers?{query}")
            assert response.status_code == 422, query
            assert response.json()["error"] == "invalid_request"
    for _ in range(2):
        assert (await client.get("/api/market/tickers/B-TC")).status_code == 422
        assert (await client.get("/api/market/tickers/DOGEEUR")).status_code == 404


async def test_unknown_symbol_stays_404_when_the_snapshot_is_cached(api: Api) -> None:
    client, services = api
    assert (await client.get("/api/market/tickers/BTCUSDT")).status_code == 200
    served_front(services)
    assert (await client.get("/api/market/tickers/BTCUSDT")).status_code == 200
    with pytest.raises(AssertionError, match="the route ran"):
        await client.get("/api/market/tickers/NOPE")


async def test_a_miss_in_process_takes_the_normal_path(api: Api) -> None:
    client, services = api
    first = await client.get("/api/market/movers")
    await services.cache.invalidate("api")  # new version: the remembered entry is unreachable
    second = await client.get("/api/market/movers")
    assert second.status_code == 200
    assert services.cache.stats.requests[("api", "miss", "memory")] == 2
    assert second.headers.keys() == first.headers.keys()


async def test_forced_misses_skip_the_front_path(api: Api) -> None:
    client, services = api
    await client.get("/api/market/movers")
    services.cache.force_miss = True
    calls_before = services.cache.stats.misses
    assert (await client.get("/api/market/movers")).status_code == 200
    assert services.cache.stats.misses > calls_before


def test_remembered_requests_and_rendered_bodies_are_bounded() -> None:
    responses = ResponseCache(max_requests=3, max_rendered=2)
    route = object()
    for i in range(10):
        scope: Scope = {"path": f"/p{i}", "query_string": b"", "route": route}
        responses.remember(scope, CachedView("api", f"k{i}"))
        responses.render(CachedView("api", f"k{i}"), b"[%d]" % i)
    assert len(responses._requests) == 3
    assert len(responses._rendered) == 2
    by_bytes = ResponseCache(max_bytes=1000)
    for i in range(5):
        by_bytes.render(CachedView("api", f"k{i}"), b'"%s"' % (b"x" * 300))
    assert by_bytes.bytes_used <= 1000
    assert len(by_bytes._rendered) == 3
    too_long: Scope = {"path": "/p", "query_string": b"x" * 600, "route": route}
    responses.remember(too_long, CachedView("api", "long"))
    assert ("/p", b"x" * 600) not in responses._requests


def test_etag_comparison_and_headers() -> None:
    assert etag_matches(b'W/"a", "b"', b'"a"')
    assert etag_matches(b"*", b'"a"')
    assert not etag_matches(b'"ab"', b'"a"')
    rendered = ResponseCache().render(CachedView("api", "k"), b'{"x":1}')
    assert rendered is not None
    answer = build_answer(rendered, 1.7, None)
    assert answer.status == 200
    assert dict(answer.headers)[b"cache-control"] == b"max-age=1"
    assert build_answer(rendered, float("inf"), None).headers[-1] == (
        b"cache-control",
        b"max-age=86400",
    )
    assert build_answer(rendered, 0.0, rendered.etag).status == 304
