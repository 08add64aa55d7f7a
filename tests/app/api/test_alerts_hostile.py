"""Hostile webhook callers against the real `market-api` process: memory and cross-site posts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from tests.app.alerting.payloads import alert, payload
from tests.support.market_process import MarketProcess, market_process

pytestmark = pytest.mark.server

WEBHOOK = "/api/alerts/webhook"
RECENT = "/api/alerts/recent"
MIB = 1024 * 1024
HISTORY_BYTES = 4 * MIB
NOTIFICATION_BYTES = 256 * 1024


def padded(size: int, serial: int) -> bytes:
    """A valid notification of about `size` bytes (annotations of 8,000 characters)."""
    notes = size // 8100
    items = []
    for first in range(0, notes, 60):  # at most 64 annotations per alert
        item = alert(instance=f"127.0.0.1:{10000 + serial}")
        item["annotations"] = {
            f"note{i}": chr(97 + (serial + i) % 26) * 8000
            for i in range(first, min(notes, first + 60))
        }
        items.append(item)
    return orjson.dumps(payload(*items))


@pytest.fixture
def server() -> Iterator[MarketProcess]:
    env = {
        "ALERT_HISTORY_MAX_BYTES": str(HISTORY_BYTES),
        "ALERT_NOTIFICATION_MAX_BYTES": str(NOTIFICATION_BYTES),
    }
    with market_process(env) as proc:
        yield proc


async def _post_all(client: httpx.AsyncClient, bodies: list[bytes]) -> list[int]:
    semaphore = asyncio.Semaphore(4)

    async def post(body: bytes) -> int:
        async with semaphore:
            response = await client.post(
                WEBHOOK, content=body, headers={"content-type": "application/json"}
            )
            return response.status_code

    return await asyncio.gather(*(post(b) for b in bodies))


async def test_history_and_recent_answer_stay_within_their_byte_limits(
    server: MarketProcess,
) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=30.0) as client:
        assert (await client.get(RECENT)).status_code == 200
        idle_rss = server.rss()

        oversized = [padded(800 * 1024, i) for i in range(20)]
        statuses = await _post_all(client, oversized)
        assert set(statuses) == {413}
        refused = await client.post(
            WEBHOOK, content=oversized[0], headers={"content-type": "application/json"}
        )
        assert refused.json()["error"] == "payload_too_large"

        fitting = [padded(200 * 1024, i) for i in range(200)]
        assert len(fitting[0]) <= NOTIFICATION_BYTES
        statuses = await _post_all(client, fitting)
        assert set(statuses) == {200}
        recent = await client.get(RECENT)
        peak_rss = server.rss()

    body: dict[str, Any] = recent.json()
    growth = peak_rss - idle_rss
    print(
        f"idle RSS {idle_rss / MIB:.1f} MiB, after {len(fitting)} x {len(fitting[0]) // 1024} KiB "
        f"notifications {peak_rss / MIB:.1f} MiB (+{growth / MIB:.1f}); recent answer "
        f"{len(recent.content) / MIB:.2f} MiB, {len(body['notifications'])} notifications"
    )
    assert body["received"] == len(fitting)
    assert len(recent.content) <= HISTORY_BYTES + 64 * 1024
    assert body["max_bytes"] == HISTORY_BYTES
    assert body["bytes"] <= HISTORY_BYTES
    assert 0 < len(body["notifications"]) < len(fitting)
    ids = [n["id"] for n in body["notifications"]]
    assert ids == list(range(len(fitting), len(fitting) - len(ids), -1))  # the newest ones
    assert growth < 3 * HISTORY_BYTES + 16 * MIB


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"],
    ids=["none", "text-plain", "form", "multipart"],
)
async def test_cross_site_simple_requests_are_415(
    server: MarketProcess, content_type: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    async with httpx.AsyncClient(base_url=server.url) as client:
        request = client.build_request(
            "POST", WEBHOOK, content=orjson.dumps(payload()), headers=headers
        )
        if content_type is None:
            request.headers.pop("content-type", None)
        response = await client.send(request)
        kept = (await client.get(RECENT)).json()["received"]
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    assert kept == 0


async def test_a_missing_token_is_a_warning_at_start(server: MarketProcess) -> None:
    lines = server.log().splitlines()
    assert any("WARNING" in line and "ALERT_WEBHOOK_TOKEN" in line for line in lines)
