from __future__ import annotations

from typing import Any

import orjson
import pytest

from app.main import create_app
from tests.app.alerting.payloads import alert, payload
from tests.conftest import make_settings
from tests.support.app_client import running_app

MAX_BODY_BYTES = make_settings().alert_notification_max_bytes
WEBHOOK = "/api/alerts/webhook"
RECENT = "/api/alerts/recent"
JSON = {"content-type": "application/json"}


def quiet_app(**overrides: Any) -> Any:
    return create_app(make_settings(gc_freeze=False, **overrides), telemetry=None)


async def test_webhook_then_recent_newest_first() -> None:
    async with running_app(quiet_app()) as (client, _):
        for instance in ("127.0.0.1:8000", "127.0.0.1:8001", "127.0.0.1:8002"):
            response = await client.post(WEBHOOK, json=payload(alert(instance=instance)))
            assert response.status_code == 200
        assert response.json() == {"id": 3, "alerts": 1}
        body = (await client.get(RECENT)).json()
        limited = (await client.get(RECENT, params={"limit": 2})).json()
    assert body["capacity"] == 200
    assert body["received"] == 3
    instances = [n["alerts"][0]["labels"]["instance"] for n in body["notifications"]]
    assert instances == ["127.0.0.1:8002", "127.0.0.1:8001", "127.0.0.1:8000"]
    assert limited["notifications"] == body["notifications"][:2]
    first = body["notifications"][-1]
    assert first["receiver"] == "ticket"
    assert first["alerts"][0]["annotations"]["summary"].startswith("Market API resident memory")
    assert first["receivedAt"].endswith("Z")


async def test_history_size_comes_from_settings() -> None:
    async with running_app(quiet_app(alert_history_size=2)) as (client, _):
        for port in (8000, 8001, 8002):
            await client.post(WEBHOOK, json=payload(alert(instance=f"127.0.0.1:{port}")))
        body = (await client.get(RECENT)).json()
    assert body["capacity"] == 2
    assert [n["id"] for n in body["notifications"]] == [3, 2]


@pytest.mark.parametrize("limit", ["0", "-1", "10001", "many"])
async def test_bad_limit_is_422(limit: str) -> None:
    async with running_app(quiet_app()) as (client, _):
        response = await client.get(RECENT, params={"limit": limit})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"[]",
        b'{"version": "4"}',
    ],
    ids=["empty", "not-json", "array", "incomplete"],
)
async def test_invalid_payload_is_422_json(body: bytes) -> None:
    async with running_app(quiet_app()) as (client, services):
        response = await client.post(WEBHOOK, content=body, headers=JSON)
        assert len(services.alerts) == 0
    assert response.status_code == 422
    problem = response.json()
    assert problem["error"] == "invalid_request"
    assert problem["errors"][0]["loc"][0] == "body"


async def test_wrong_field_is_named_in_the_422() -> None:
    async with running_app(quiet_app()) as (client, _):
        response = await client.post(WEBHOOK, json=payload(version="3"))
    assert response.status_code == 422
    assert response.json()["detail"].startswith("body.version:")


async def test_oversized_body_is_413_and_not_kept() -> None:
    async with running_app(quiet_app()) as (client, services):
        too_big = b" " * (MAX_BODY_BYTES + 1)
        response = await client.post(WEBHOOK, content=too_big, headers=JSON)
        assert len(services.alerts) == 0
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


async def test_oversized_chunked_body_is_413() -> None:
    async def chunks() -> Any:
        for _ in range(MAX_BODY_BYTES // 65536 + 2):
            yield b" " * 65536

    async with running_app(quiet_app()) as (client, _):
        response = await client.post(WEBHOOK, content=chunks(), headers=JSON)
    assert response.status_code == 413


async def test_a_stored_notification_over_the_limit_is_413_and_not_kept() -> None:
    # A body within the limit can still store more: Alertmanager's defaults are added.
    many = [alert(instance=f"127.0.0.1:{9000 + i}") for i in range(150)]
    for item in many:
        del item["endsAt"], item["generatorURL"], item["fingerprint"]
    body = payload(*many)
    async with running_app(quiet_app(alert_notification_max_bytes=60_000)) as (client, services):
        response = await client.post(WEBHOOK, json=body)
        kept = len(services.alerts)
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"
    assert kept == 0


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "Application/JSON"],
)
async def test_json_media_types_are_accepted(content_type: str) -> None:
    async with running_app(quiet_app()) as (client, _):
        response = await client.post(
            WEBHOOK, content=orjson.dumps(payload()), headers={"content-type": content_type}
        )
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("authorization", "status"),
    [
        (None, 401),
        ("Bearer", 401),
        ("Basic c2VjcmV0", 401),
        ("Bearer wrong-token", 401),
        ("Bearer s3cret-token", 200),
        ("bearer s3cret-token", 200),
    ],
    ids=["missing", "empty", "basic", "wrong", "right", "scheme-case"],
)
async def test_bearer_token_when_configured(authorization: str | None, status: int) -> None:
    headers = {"authorization": authorization} if authorization else {}
    async with running_app(quiet_app(alert_webhook_token="s3cret-token")) as (client, services):
        response = await client.post(WEBHOOK, json=payload(), headers=headers)
        kept = len(services.alerts)
    assert response.status_code == status
    if status == 401:
        assert response.json()["error"] == "unauthorized"
        assert response.headers["www-authenticate"] == "Bearer"
        assert kept == 0
    else:
        assert kept == 1


async def test_without_a_token_setting_anyone_may_post() -> None:
    async with running_app(quiet_app()) as (client, _):
        response = await client.post(
            WEBHOOK, json=payload(), headers={"authorization": "Bearer anything"}
        )
    assert response.status_code == 200


async def test_token_is_not_in_the_settings_repr() -> None:
    settings = make_settings(alert_webhook_token="s3cret-token")
    assert "s3cret-token" not in repr(settings)


async def test_openapi_documents_the_payload() -> None:
    async with running_app(quiet_app()) as (client, _):
        spec = (await client.get("/openapi.json")).json()
    body = spec["paths"][WEBHOOK]["post"]["requestBody"]["content"]["application/json"]
    assert {"version", "status", "alerts", "groupLabels"} <= set(body["schema"]["properties"])


async def test_each_notification_is_broadcast_to_the_alerts_topic(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sent: list[tuple[str, Any]] = []

    def broadcast(topic: str, data: Any) -> int:
        sent.append((topic, data))
        return 1

    async with running_app(quiet_app()) as (client, services):
        assert services.ws is not None
        monkeypatch.setattr(services.ws, "broadcast", broadcast)
        await client.post(WEBHOOK, json=payload(alert(instance="127.0.0.1:8000")))
        await client.post(WEBHOOK, json=payload(alert(instance="127.0.0.1:8001")))
        recent = (await client.get(RECENT)).json()["notifications"]
    assert sent == [("alerts", recent[1]), ("alerts", recent[0])]


async def test_a_failing_broadcast_still_answers_200(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(topic: str, data: Any) -> int:
        raise TypeError("not serializable")

    async with running_app(quiet_app()) as (client, services):
        assert services.ws is not None
        monkeypatch.setattr(services.ws, "broadcast", broken)
        response = await client.post(WEBHOOK, json=payload())
        assert services.alerts.publish_errors == 1
    assert response.status_code == 200


@pytest.mark.parametrize("count", [2**53, 2**64, -1, True])
async def test_truncated_alerts_out_of_range_is_422(count: object) -> None:
    async with running_app(quiet_app()) as (client, services):
        response = await client.post(WEBHOOK, json=payload(truncatedAlerts=count))
        kept = len(services.alerts)
    assert response.status_code == 422
    assert kept == 0
