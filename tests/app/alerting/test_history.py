from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from app.alerting import AlertHistory, WebhookPayload
from tests.app.alerting.payloads import alert, payload


def notification(instance: str, status: str = "firing") -> WebhookPayload:
    body = payload(alert(instance=instance, status=status), status=status)
    return WebhookPayload.model_validate_json(orjson.dumps(body))


async def test_keeps_the_newest_within_capacity() -> None:
    history = AlertHistory(capacity=3)
    for i in range(5):
        await history.record(notification(f"127.0.0.1:{8000 + i}"))
    assert len(history) == 3
    assert history.received == 5
    recent = history.recent()
    assert [e["id"] for e in recent] == [5, 4, 3]
    assert [e["alerts"][0]["labels"]["instance"] for e in recent] == [
        "127.0.0.1:8004",
        "127.0.0.1:8003",
        "127.0.0.1:8002",
    ]
    assert [e["id"] for e in history.recent(2)] == [5, 4]
    assert history.recent(100) == recent
    assert history.recent(0) == []


async def test_entry_is_the_payload_with_an_id_and_a_receipt_time() -> None:
    moment = datetime(2026, 3, 1, 10, 0, 5, 250000, tzinfo=UTC)
    history = AlertHistory(clock=lambda: moment)
    source = notification("127.0.0.1:8000", status="resolved")
    entry = await history.record(source)
    assert entry["id"] == 1
    assert entry["receivedAt"] == "2026-03-01T10:00:05.250000Z"
    assert {k: v for k, v in entry.items() if k not in {"id", "receivedAt"}} == (
        source.model_dump(mode="json")
    )
    assert entry["status"] == "resolved"


async def test_publishes_each_entry_once() -> None:
    published: list[dict[str, Any]] = []

    async def publish(entry: dict[str, Any]) -> None:
        published.append(entry)

    history = AlertHistory(on_notification=publish)
    first = await history.record(notification("127.0.0.1:8000"))
    second = await history.record(notification("127.0.0.1:8001"))
    assert published == [first, second]


async def test_a_failing_publisher_does_not_lose_the_notification(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(entry: dict[str, Any]) -> None:
        raise RuntimeError("no dashboards today")

    history = AlertHistory(on_notification=broken)
    with caplog.at_level(logging.WARNING, logger="app.alerting.history"):
        for port in (8000, 8001, 8002):
            await history.record(notification(f"127.0.0.1:{port}"))
    assert len(history) == 3
    assert history.publish_errors == 3
    warnings = [r for r in caplog.records if "not published" in r.getMessage()]
    assert len(warnings) == 1, "a recurring failure is logged once per interval"


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        AlertHistory(capacity=0)


async def test_bytes_bound_drops_the_oldest_and_refuses_one_too_large() -> None:
    from app.alerting import NotificationTooLarge

    probe = AlertHistory()
    await probe.record(notification("127.0.0.1:8000"))
    one = probe.bytes
    history = AlertHistory(capacity=100, max_bytes=3 * one + 100, max_entry_bytes=one + 50)
    for i in range(6):
        await history.record(notification(f"127.0.0.1:{8000 + i}"))
    assert len(history) == 3
    assert history.bytes <= history.max_bytes
    assert [e["id"] for e in history.recent()] == [6, 5, 4]
    big = payload(alert(instance="127.0.0.1:9000"))
    big["alerts"][0]["annotations"]["description"] = "x" * (one + 100)
    with pytest.raises(NotificationTooLarge):
        await history.record(WebhookPayload.model_validate_json(orjson.dumps(big)))
    assert len(history) == 3
    assert history.received == 6
    assert (await history.record(notification("127.0.0.1:9001")))["id"] == 7
