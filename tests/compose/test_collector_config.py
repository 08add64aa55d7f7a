"""otel-collector.yaml: complete pipelines in the right order, addresses that exist in the
stack, and a tail-sampling policy that keeps whatever the app keeps."""

from __future__ import annotations

import re
from typing import Any

import pytest

from app.settings import Settings
from tests.compose import stack

CONFIG = stack.collector()
PIPELINES: dict[str, dict[str, list[str]]] = CONFIG["service"]["pipelines"]
KINDS = ("receivers", "processors", "exporters")


def policies() -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in CONFIG["processors"]["tail_sampling"]["policies"]}


@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
def test_every_component_of_a_pipeline_is_defined(pipeline: str) -> None:
    for kind in KINDS:
        for component in PIPELINES[pipeline][kind]:
            assert component in CONFIG[kind], f"{pipeline}: {kind[:-1]} {component} undefined"


def test_every_defined_component_is_used() -> None:
    for kind in KINDS:
        used = {c for p in PIPELINES.values() for c in p[kind]}
        assert used == set(CONFIG[kind]), kind


@pytest.mark.parametrize("pipeline", sorted(PIPELINES))
def test_memory_limiter_comes_first_and_batch_is_in_every_pipeline(pipeline: str) -> None:
    processors = PIPELINES[pipeline]["processors"]
    assert processors[0] == "memory_limiter"
    assert "batch" in processors
    if "tail_sampling" in processors:
        # Sampling regroups spans by trace: batch what it lets through.
        assert processors.index("tail_sampling") < processors.index("batch")


def test_both_signals_have_a_pipeline() -> None:
    assert set(PIPELINES) == {"traces", "metrics"}
    assert "tail_sampling" in PIPELINES["traces"]["processors"]


def test_the_health_check_extension_is_enabled_and_probed() -> None:
    assert "health_check" in CONFIG["service"]["extensions"]
    _, port = stack.host_port(CONFIG["extensions"]["health_check"]["endpoint"])
    probe = " ".join(stack.services()["otel-collector-health"]["healthcheck"]["test"])
    assert f"http://otel-collector:{port}/" in probe


@pytest.mark.parametrize(
    "endpoint",
    [
        CONFIG["extensions"]["health_check"]["endpoint"],
        CONFIG["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"],
        CONFIG["receivers"]["otlp"]["protocols"]["http"]["endpoint"],
        CONFIG["exporters"]["prometheus"]["endpoint"],
    ],
)
def test_what_other_containers_reach_listens_on_every_interface(endpoint: str) -> None:
    """Collector endpoints default to localhost: unreachable from the other containers."""
    assert stack.host_port(endpoint)[0] == "0.0.0.0"


def test_traces_go_to_tempo_where_it_listens() -> None:
    [exporter] = PIPELINES["traces"]["exporters"]
    assert exporter.split("/")[0] == "otlp_grpc"
    host, port = stack.host_port(CONFIG["exporters"][exporter]["endpoint"])
    assert host == "tempo"
    grpc = stack.tempo()["distributor"]["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert port == stack.host_port(grpc)[1]
    assert port in stack.listening_ports()[host]
    assert "tempo" in stack.services()["otel-collector"]["depends_on"]


def test_metrics_are_exposed_in_openmetrics_for_prometheus() -> None:
    assert PIPELINES["metrics"]["exporters"] == ["prometheus"]
    exporter = CONFIG["exporters"]["prometheus"]
    assert exporter["enable_open_metrics"] is True, "exemplars survive only in OpenMetrics"
    assert exporter["translation_strategy"] == "UnderscoreEscapingWithSuffixes"
    for key in ("namespace", "const_labels", "resource_to_telemetry_conversion"):
        assert key not in exporter, f"{key} would change the names or labels the rules select"


def test_unit_one_gauges_keep_the_names_of_the_scrape_path() -> None:
    [transform] = [p for p in PIPELINES["metrics"]["processors"] if p.startswith("transform")]
    assert CONFIG["processors"][transform]["metric_statements"] == [
        {
            "context": "metric",
            "statements": [
                'set(metric.unit, "") where metric.unit == "1" '
                "and metric.type == METRIC_DATA_TYPE_GAUGE"
            ],
        }
    ]


def test_tail_sampling_latency_threshold_is_the_apps_default() -> None:
    default = Settings.model_fields["trace_keep_slower_than_ms"].default
    assert policies()["slow"]["latency"]["threshold_ms"] == default


def test_tail_sampling_keeps_everything_the_app_keeps() -> None:
    found = policies()
    assert found["app-kept-slow-or-failed"]["string_attribute"] == {
        "key": "sampling.keep_reason",
        "values": ["slow", "error"],
    }
    assert found["failed"]["status_code"] == {"status_codes": ["ERROR"]}
    # The app's ratio sample passes whole by default, so no exemplar points at a dropped trace.
    assert found["ratio-share"]["probabilistic"]["sampling_percentage"] == 100
    assert {p["type"] for p in found.values()} <= {
        "string_attribute",
        "latency",
        "status_code",
        "probabilistic",
    }, "only policies that sample (an and/drop policy could veto the app's decisions)"


def test_a_gone_replica_stops_being_exposed_after_a_few_missed_exports() -> None:
    expiration = CONFIG["exporters"]["prometheus"]["metric_expiration"]
    match = re.fullmatch(r"([0-9]+)(s|m)", expiration)
    assert match is not None, expiration
    seconds = int(match.group(1)) * (60 if match.group(2) == "m" else 1)
    export_interval = int(stack.environment("app")["OTEL_METRIC_EXPORT_INTERVAL"]) / 1000
    assert 3 * export_interval <= seconds < 300, "a missed export or two never drops a series"
