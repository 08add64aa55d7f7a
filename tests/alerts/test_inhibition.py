"""Inhibition on a real Alertmanager: amtool cannot test it.

MarketApiMemoryHigh mutes MarketApiMemoryLeakSuspected of the same job and instance while it
fires, and only then.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from devstack.process import free_port
from tests.support.alertmanager import AlertmanagerApi, running_alertmanager, wait_for

pytestmark = pytest.mark.alertmanager

JOB = "market-api"
A = "127.0.0.1:8000"
B = "127.0.0.1:8001"


def memory(instance: str) -> dict[str, str]:
    return {
        "alertname": "MarketApiMemoryHigh",
        "severity": "warning",
        "job": JOB,
        "instance": instance,
    }


def leak(instance: str) -> dict[str, str]:
    return {
        "alertname": "MarketApiMemoryLeakSuspected",
        "severity": "info",
        "job": JOB,
        "instance": instance,
    }


@pytest.fixture
def alertmanager() -> Iterator[AlertmanagerApi]:
    # Nobody listens on the webhook port: notifications fail, which inhibition does not care about.
    with running_alertmanager(f"http://127.0.0.1:{free_port()}/api/alerts/webhook") as api:
        yield api


def state_of(api: AlertmanagerApi, labels: dict[str, str]) -> dict[str, Any] | None:
    return api.alert(alertname=labels["alertname"], instance=labels["instance"])


def inhibited(api: AlertmanagerApi, labels: dict[str, str]) -> list[str] | None:
    """The fingerprints inhibiting the alert, once it is inhibited; None until then."""
    alert = state_of(api, labels)
    if alert is None or not alert["status"]["inhibitedBy"]:
        return None
    assert alert["status"]["state"] == "suppressed"
    by: list[str] = alert["status"]["inhibitedBy"]
    return by


def active(api: AlertmanagerApi, labels: dict[str, str]) -> dict[str, Any] | None:
    alert = state_of(api, labels)
    if alert is None or alert["status"]["state"] != "active":
        return None
    assert alert["status"]["inhibitedBy"] == []
    return alert


def test_leak_alert_is_inhibited_only_while_memory_alert_fires(
    alertmanager: AlertmanagerApi,
) -> None:
    api = alertmanager
    api.fire(leak(A))
    api.fire(leak(B))
    wait_for(lambda: active(api, leak(A)), "the leak alert of A, alone and active")

    # Memory fires on B only: B's leak alert is muted, A's is not.
    api.fire(memory(B))
    memory_b = wait_for(lambda: active(api, memory(B)), "the memory alert of B")
    assert wait_for(lambda: inhibited(api, leak(B)), "B's leak alert muted") == [
        memory_b["fingerprint"]
    ]
    assert active(api, leak(A)) is not None, "a memory alert of another instance mutes nothing"

    # Memory fires on A too: now A's leak alert is muted, by A's memory alert.
    api.fire(memory(A))
    memory_a = wait_for(lambda: active(api, memory(A)), "the memory alert of A")
    assert wait_for(lambda: inhibited(api, leak(A)), "A's leak alert muted") == [
        memory_a["fingerprint"]
    ]
    assert active(api, memory(A)) is not None, "the memory alert itself is never muted"

    # A's memory alert resolves: A's leak alert speaks again; B's stays muted.
    api.resolve(memory(A))
    wait_for(lambda: active(api, leak(A)), "A's leak alert active again")
    assert inhibited(api, leak(B)) == [memory_b["fingerprint"]]


def test_memory_alert_of_another_job_mutes_nothing(alertmanager: AlertmanagerApi) -> None:
    api = alertmanager
    other = {**memory(A), "job": "another-service"}
    api.fire(other)
    api.fire(leak(B))
    api.fire(memory(B))
    # Once B's leak alert is muted, the inhibitor has seen every alert posted before it.
    wait_for(lambda: inhibited(api, leak(B)), "B's leak alert muted")
    api.fire(leak(A))
    wait_for(lambda: active(api, leak(A)), "A's leak alert, not muted by another job")
