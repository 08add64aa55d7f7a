"""OTLP metrics as the Collector's Prometheus exporter exposes them: names, labels, exemplars.

The Collector cannot run here, so this is its translation written down from its documentation
(contrib pkg/translator/prometheus/README.md, exporter/prometheusexporter/README.md) and the
code they describe (prometheus/otlptranslator `normalizeName`, the exporter's
`getMetricMetadata` and `convertExemplars`), applied to real OTLP protobuf:

- name: the metric name split on characters outside [a-zA-Z0-9:] and joined with `_`; the unit
  appended unless already a word of the name (UCUM units mapped as in the table both
  OpenTelemetry Python and the Collector use; `{...}` annotations dropped; `1` maps to nothing);
  `total` moved to the end of monotonic sums; `ratio` appended to gauges whose unit is `1`;
- labels: the point's attributes (same sanitizing), `otel_scope_name`, `otel_scope_version`,
  `otel_scope_schema_url`, `job` from `service.namespace/service.name` (just `service.name`
  without a namespace), `instance` from `service.instance.id`; `le` on histogram buckets.
  Prometheus drops labels whose value is empty when it ingests a sample;
- exemplars: labels `trace_id` and `span_id`, the ids in lowercase hex.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from opentelemetry.exporter.prometheus._mapping import map_unit, sanitize_attribute
from opentelemetry.proto.metrics.v1.metrics_pb2 import Exemplar, Metric

from tests.support.otlp_receiver import attributes

_WORDS: Final = re.compile(r"[^a-zA-Z0-9:]+")
SCOPE_LABELS: Final = ("otel_scope_name", "otel_scope_version", "otel_scope_schema_url")


@dataclass(frozen=True)
class PrometheusSeries:
    """What one OTLP metric becomes: its family name, sample names and label-name sets."""

    family: str
    sample_names: frozenset[str]
    label_sets: frozenset[frozenset[str]]


def kind(metric: Metric) -> str:
    """gauge, counter (monotonic sum), updown (non-monotonic sum), histogram, ..."""
    data = metric.WhichOneof("data")
    if data == "sum":
        return "counter" if metric.sum.is_monotonic else "updown"
    return str(data)


def clear_unit_of_ratio_gauges(metric: Metric) -> Metric:
    """The effect of otel-collector.yaml's `transform/prometheus_names` processor:
    `set(metric.unit, "") where metric.unit == "1" and metric.type == METRIC_DATA_TYPE_GAUGE`."""
    copy = Metric()
    copy.CopyFrom(metric)
    if copy.unit == "1" and kind(copy) == "gauge":
        copy.unit = ""
    return copy


def metric_name(metric: Metric) -> str:
    """The name the exporter gives `metric` (UnderscoreEscapingWithSuffixes)."""
    words = [w for w in _WORDS.split(metric.name) if w]
    unit = map_unit(metric.unit)
    if unit and unit not in words:
        words.append(unit)
    if kind(metric) == "counter":
        words = [w for w in words if w != "total"] + ["total"]
    if metric.unit == "1" and kind(metric) == "gauge":
        words = [w for w in words if w != "ratio"] + ["ratio"]
    return "_".join(words)


def job_and_instance(resource: Mapping[str, Any]) -> dict[str, str]:
    """The `job` and `instance` labels the exporter derives from the resource."""
    labels = {}
    name = resource.get("service.name")
    if name:
        namespace = resource.get("service.namespace")
        labels["job"] = f"{namespace}/{name}" if namespace else str(name)
    instance = resource.get("service.instance.id")
    if instance:
        labels["instance"] = str(instance)
    return labels


def _points(metric: Metric) -> Iterable[Any]:
    points: Iterable[Any] = getattr(metric, str(metric.WhichOneof("data"))).data_points
    return points


def series(
    metric: Metric, resource: Mapping[str, Any], scope: Mapping[str, str]
) -> PrometheusSeries:
    """The samples Prometheus stores when it scrapes the exporter with honor_labels."""
    name = metric_name(metric)
    histogram = kind(metric) == "histogram"
    samples = {f"{name}_bucket", f"{name}_count", f"{name}_sum"} if histogram else {name}
    constant = {**scope, **job_and_instance(resource)}
    label_sets = set()
    for point in _points(metric):
        labels = {sanitize_attribute(k): v for k, v in attributes(point.attributes).items()}
        labels.update(constant)
        label_sets.add(frozenset(k for k, v in labels.items() if v != ""))
    return PrometheusSeries(name, frozenset(samples), frozenset(label_sets))


def exemplar_labels(exemplar: Exemplar) -> dict[str, str]:
    """The labels of an exemplar in the exporter's OpenMetrics output."""
    labels = {}
    if any(exemplar.trace_id):
        labels["trace_id"] = exemplar.trace_id.hex()
    if any(exemplar.span_id):
        labels["span_id"] = exemplar.span_id.hex()
    return labels


def exemplars(metric: Metric) -> Iterator[Exemplar]:
    for point in _points(metric):
        yield from getattr(point, "exemplars", ())
