from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from app.alerting.models import MAX_ALERTS, MAX_PAIRS, WebhookPayload
from tests.app.alerting.payloads import alert, payload


def parse(body: dict[str, Any]) -> WebhookPayload:
    return WebhookPayload.model_validate_json(orjson.dumps(body))


def test_parses_alertmanager_v4() -> None:
    parsed = parse(payload(alert(), alert(instance="127.0.0.1:8001")))
    assert parsed.status == "firing"
    assert parsed.receiver == "ticket"
    assert parsed.group_labels == {"alertname": "MarketApiMemoryHigh", "job": "market-api"}
    assert parsed.external_url == "http://127.0.0.1:9093"
    assert [a.labels["instance"] for a in parsed.alerts] == ["127.0.0.1:8000", "127.0.0.1:8001"]
    first = parsed.alerts[0]
    assert first.starts_at.tzinfo is not None
    assert first.ends_at == datetime(1, 1, 1, tzinfo=UTC)
    assert first.generator_url.startswith("http://127.0.0.1:9090/graph")


def test_dumps_with_alertmanager_field_names() -> None:
    dumped = parse(payload(alert(status="resolved"), status="resolved")).model_dump(mode="json")
    assert set(dumped) == {
        "version",
        "groupKey",
        "truncatedAlerts",
        "status",
        "receiver",
        "groupLabels",
        "commonLabels",
        "commonAnnotations",
        "externalURL",
        "alerts",
    }
    assert set(dumped["alerts"][0]) == {
        "status",
        "labels",
        "annotations",
        "startsAt",
        "endsAt",
        "generatorURL",
        "fingerprint",
    }
    assert dumped["alerts"][0]["endsAt"] == "2026-03-01T10:20:00Z"


def test_unknown_fields_are_ignored() -> None:
    body = payload(alert(), futureField={"x": 1})
    body["alerts"][0]["somethingNew"] = True
    dumped = parse(body).model_dump(mode="json")
    assert "futureField" not in dumped
    assert "somethingNew" not in dumped["alerts"][0]


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda b: b.update(version="3"), "version"),
        (lambda b: b.update(status="pending"), "status"),
        (lambda b: b.update(alerts=[]), "alerts"),
        (lambda b: b.pop("receiver"), "receiver"),
        (lambda b: b.update(truncatedAlerts=-1), "truncatedAlerts"),
        (lambda b: b["alerts"][0].update(startsAt="2026-03-01T10:00:00"), "startsAt"),
        (lambda b: b["alerts"][0].update(startsAt="yesterday"), "startsAt"),
        (lambda b: b["alerts"][0].update(labels=["alertname"]), "labels"),
        (lambda b: b["alerts"][0]["labels"].update({"": "x"}), "labels"),
        (lambda b: b["alerts"][0]["labels"].update(big="x" * 1025), "labels"),
        (lambda b: b["alerts"][0]["annotations"].update(big="x" * 8193), "annotations"),
        (
            lambda b: b["alerts"][0]["labels"].update({f"l{i}": "v" for i in range(MAX_PAIRS)}),
            "labels",
        ),
        (lambda b: b.update(alerts=[alert()] * (MAX_ALERTS + 1)), "alerts"),
        (lambda b: b.update(groupKey="k" * 4097), "groupKey"),
    ],
    ids=[
        "version",
        "status",
        "no-alerts",
        "no-receiver",
        "negative-truncated",
        "naive-time",
        "bad-time",
        "labels-not-a-map",
        "empty-label-name",
        "label-too-long",
        "annotation-too-long",
        "too-many-labels",
        "too-many-alerts",
        "group-key-too-long",
    ],
)
def test_refuses_what_alertmanager_never_sends(change: Any, where: str) -> None:
    body = payload()
    change(body)
    with pytest.raises(ValidationError) as caught:
        parse(body)
    assert any(where in [str(p) for p in e["loc"]] for e in caught.value.errors())


def test_the_largest_accepted_payload_is_bounded() -> None:
    big = alert(**{f"l{i}": "v" * 1024 for i in range(MAX_PAIRS - 4)})
    parsed = parse(payload(*[big] * MAX_ALERTS))
    assert len(parsed.alerts) == MAX_ALERTS
