"""Alertmanager webhook payloads (version 4) as Alertmanager 0.25 sends them."""

from __future__ import annotations

from typing import Any


def alert(
    alertname: str = "MarketApiMemoryHigh",
    status: str = "firing",
    instance: str = "127.0.0.1:8000",
    **labels: str,
) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {
            "alertname": alertname,
            "instance": instance,
            "job": "market-api",
            "severity": "warning",
            **labels,
        },
        "annotations": {
            "summary": "Market API resident memory is above 150MiB.",
            "description": f"{instance} of job market-api uses 160MiB of resident memory.",
            "runbook_url": "docs/runbooks.md#marketapimemoryhigh",
        },
        "startsAt": "2026-03-01T10:00:00.123456789Z",
        "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-03-01T10:20:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph?g0.expr=up",
        "fingerprint": "5c1b4d2a9f3e7a10",
    }


def payload(*alerts: dict[str, Any], status: str = "firing", **overrides: Any) -> dict[str, Any]:
    items = list(alerts) or [alert(status=status)]
    body: dict[str, Any] = {
        "version": "4",
        "groupKey": '{}/{severity="warning"}:{alertname="MarketApiMemoryHigh", job="market-api"}',
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "ticket",
        "groupLabels": {"alertname": "MarketApiMemoryHigh", "job": "market-api"},
        "commonLabels": {
            "alertname": "MarketApiMemoryHigh",
            "job": "market-api",
            "severity": "warning",
        },
        "commonAnnotations": {"summary": "Market API resident memory is above 150MiB."},
        "externalURL": "http://127.0.0.1:9093",
        "alerts": items,
    }
    body.update(overrides)
    return body
