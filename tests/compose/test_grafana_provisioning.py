"""grafana/provisioning: the datasources the dashboards name, linked to each other, and the
provider that loads the generated dashboards from where Compose mounts them."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dashboards.datasources import (
    ALERTMANAGER_TYPE,
    ALERTMANAGER_UID,
    PROMETHEUS_TYPE,
    PROMETHEUS_UID,
    PROVISIONED_UIDS,
    TEMPO_TYPE,
    TEMPO_UID,
)
from tests.compose import stack

DATASOURCES: list[dict[str, Any]] = stack.load_yaml(stack.DATASOURCES_FILE)["datasources"]
BY_UID = {d["uid"]: d for d in DATASOURCES}
PROVISIONING_FILES = sorted(stack.PROVISIONING_DIR.rglob("*.yaml"))
DASHBOARDS = sorted(stack.DASHBOARDS_JSON_DIR.glob("*.json"))
EXPECTED = {
    PROMETHEUS_UID: PROMETHEUS_TYPE,
    TEMPO_UID: TEMPO_TYPE,
    ALERTMANAGER_UID: ALERTMANAGER_TYPE,
}
"""uid -> type, fixed: the generated dashboards refer to datasources by these uids."""


def uid_references(node: Any) -> Iterator[str]:
    """Every `datasourceUid` value, and every `uid` of a `datasource` object, anywhere."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasourceUid" and isinstance(value, str):
                yield value
            if key == "datasource" and isinstance(value, dict) and "uid" in value:
                yield str(value["uid"])
            yield from uid_references(value)
    elif isinstance(node, list):
        for item in node:
            yield from uid_references(item)


def test_the_fixed_uids_exist_with_their_types() -> None:
    assert {uid: d["type"] for uid, d in BY_UID.items()} == EXPECTED
    assert set(BY_UID) == PROVISIONED_UIDS
    assert [d["uid"] for d in DATASOURCES if d.get("isDefault")] == ["prometheus"]
    assert BY_UID["alertmanager"]["jsonData"]["implementation"] == "prometheus"


@pytest.mark.parametrize("uid", sorted(EXPECTED))
def test_each_datasource_points_at_its_service(uid: str) -> None:
    host, port = stack.host_port(BY_UID[uid]["url"])
    assert host == uid, "each datasource's Compose service is named like its uid"
    assert port in stack.listening_ports()[host]
    assert uid in stack.services()["grafana"]["depends_on"]


@pytest.mark.parametrize("path", PROVISIONING_FILES, ids=lambda p: p.name)
def test_every_referenced_uid_is_provisioned(path: Path) -> None:
    for uid in uid_references(stack.load_yaml(path)):
        assert uid in BY_UID, f"{path.name} refers to datasource {uid!r}"


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_uid_a_dashboard_names_is_provisioned(path: Path) -> None:
    for uid in uid_references(json.loads(path.read_text())):
        if not uid.startswith("$"):  # a dashboard variable, resolved to a provisioned uid
            assert uid in BY_UID, f"{path.name} refers to datasource {uid!r}"


def test_exemplars_open_their_trace_in_tempo() -> None:
    [destination] = BY_UID["prometheus"]["jsonData"]["exemplarTraceIdDestinations"]
    # The label the Collector's Prometheus exporter and Tempo's span metrics give exemplars.
    assert destination["name"] == "trace_id"
    assert destination["datasourceUid"] == "tempo"


def test_tempo_links_spans_to_metrics_and_draws_the_service_graph() -> None:
    data = BY_UID["tempo"]["jsonData"]
    assert data["serviceMap"]["datasourceUid"] == "prometheus"
    assert data["nodeGraph"]["enabled"] is True
    to_metrics = data["tracesToMetrics"]
    assert to_metrics["datasourceUid"] == "prometheus"
    # service.name is `job` on both metric paths (docs/telemetry.md, "Collector path").
    assert to_metrics["tags"] == [{"key": "service.name", "value": "job"}]
    for query in to_metrics["queries"]:
        assert "{$$__tags}" in query["query"]


@pytest.mark.parametrize("path", PROVISIONING_FILES, ids=lambda p: p.name)
def test_a_literal_dollar_is_escaped(path: Path) -> None:
    """Grafana expands $VAR and ${VAR} in provisioning files; `$$` is a literal `$`."""
    text = re.sub(r"(?m)#.*$", "", path.read_text())
    assert re.findall(r"(?<!\$)\$(?!\$)", text.replace("$$", "")) == []


def test_the_dashboard_provider_reads_the_mounted_generated_dashboards() -> None:
    [provider] = stack.load_yaml(stack.DASHBOARD_PROVIDERS_FILE)["providers"]
    assert provider["type"] == "file"
    assert provider["allowUiUpdates"] is False
    assert provider["disableDeletion"] is True
    assert provider["options"]["path"] == stack.container_path(stack.DASHBOARDS_JSON_DIR, "grafana")
    assert stack.container_path(stack.PROVISIONING_DIR, "grafana") == "/etc/grafana/provisioning"
