"""service.instance.id is the address a scrape of the process would name it by."""

from __future__ import annotations

import socket

import pytest

from telemetry.instance import own_address, scrape_instance
from telemetry.sdk import build_resource
from telemetry.setup import telemetry_from_environment


def test_a_process_bound_to_one_address_is_named_by_it() -> None:
    assert scrape_instance("127.0.0.1", 8000) == "127.0.0.1:8000"
    assert scrape_instance("::1", 8000) == "[::1]:8000"
    assert scrape_instance("app.internal", 8000) == "app.internal:8000"


@pytest.mark.parametrize("wildcard", ["0.0.0.0", "::", ""])
def test_a_process_bound_to_every_interface_is_named_by_its_host_address(wildcard: str) -> None:
    """Docker maps the container's host name to its address in /etc/hosts: what Docker's DNS
    answers for the service, so what Prometheus' DNS discovery scrapes."""
    expected = socket.gethostbyname(socket.gethostname())
    assert own_address() == expected
    assert scrape_instance(wildcard, 8000) == f"{expected}:8000"


def test_a_port_the_kernel_picks_is_not_known_in_advance() -> None:
    assert scrape_instance("127.0.0.1", 0) is None


def test_an_unresolvable_host_name_leaves_the_sdk_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host name that does not resolve (asked of no real DNS server from a test)."""

    def unresolvable(name: str) -> str:
        raise socket.gaierror(socket.EAI_NONAME, f"{name}: Name or service not known")

    monkeypatch.setattr(socket, "gethostbyname", unresolvable)
    assert own_address() is None
    assert scrape_instance("0.0.0.0", 8000) is None


def test_the_resource_carries_it_unless_the_environment_sets_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    resource = build_resource("1.0", "10.0.0.7:8000")
    assert resource.attributes["service.instance.id"] == "10.0.0.7:8000"
    sdk_default = build_resource("1.0")
    assert sdk_default.attributes["service.instance.id"] != "10.0.0.7:8000"
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.instance.id=replica-a")
    assert build_resource("1.0", "10.0.0.7:8000").attributes["service.instance.id"] == "replica-a"


def test_the_app_names_its_telemetry_after_where_it_listens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    monkeypatch.delenv("OTEL_SDK_DISABLED", raising=False)
    telemetry = telemetry_from_environment(
        "1.0",
        keep_slower_than_ms=100.0,
        keep_ratio=0.0,
        loop_lag_interval=0.25,
        listen=("127.0.0.1", 18000),
    )
    assert telemetry is not None
    assert telemetry.resource.attributes["service.instance.id"] == "127.0.0.1:18000"
