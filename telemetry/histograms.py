"""Hot-path histograms, aggregated in-process and handed to the SDK's readers at collection time.

The SDK's `Histogram.record` costs 5-10 µs in CPython (it builds a Measurement, cleans and hashes
the attributes and consults the exemplar filter once per reader). Two of them run on every
request (`http.server.request.duration`, `cache.operation.duration`), which alone would eat most of
the overhead budget. These histograms keep explicit-bucket counts per attribute set (a dict
lookup and a few in-place additions per record, no lock) and are appended to the `MetricsData`
each reader collects, so the Prometheus scrape and the OTLP export show them with the same
names, units, buckets and exemplars as an SDK histogram. They are cumulative, like everything
this service exports.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

from opentelemetry.sdk.metrics import Exemplar
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext
from opentelemetry.util.types import AttributeValue

CARDINALITY_LIMIT: Final = 2000
_OVERFLOW_KEY: Final = ("otel.metric.overflow",)
_OVERFLOW_ATTRIBUTES: Final = {"otel.metric.overflow": True}


class _Point:
    __slots__ = ("attributes", "counts", "exemplars", "max", "min", "sum")

    def __init__(self, attributes: dict[str, AttributeValue], buckets: int) -> None:
        self.attributes = attributes
        self.counts = [0] * buckets
        self.sum = 0.0
        self.min = float("inf")
        self.max = float("-inf")
        self.exemplars: list[Exemplar | None] = [None] * buckets


class FastHistogram:
    """Explicit-bucket histogram with a cardinality limit, like the SDK's default."""

    def __init__(self, name: str, unit: str, description: str, boundaries: Sequence[float]) -> None:
        self.name = name
        self.unit = unit
        self.description = description
        self.boundaries = tuple(boundaries)
        self._points: dict[tuple[object, ...], _Point] = {}
        self._lock = threading.Lock()
        self._start_ns = time.time_ns()

    def record(
        self,
        value: float,
        key: tuple[object, ...],
        attributes: dict[str, AttributeValue],
        exemplar: SpanContext | None = None,
    ) -> None:
        """`key` identifies `attributes` (a tuple of its values), so no hashing of dicts here.

        `exemplar` is the span context to link from this bucket, only for traces that are kept.

        No lock: every record comes from the one thread that runs the app's event loop, and
        none of the statements below calls back into Python, so under the GIL a reader in the
        export thread sees each of them whole. A reader may land between two of them (a bucket
        counted, the sum not yet): `to_metric` derives the count from the buckets, and the sum
        is one sample late at worst, until the next collection.
        """
        point = self._points.get(key)
        if point is None:
            with self._lock:
                point = self._points.get(key) or self._new_point(key, attributes)
        index = bisect_left(self.boundaries, value)
        point.counts[index] += 1
        point.sum += value
        if value < point.min:
            point.min = value
        if value > point.max:
            point.max = value
        if exemplar is not None:
            point.exemplars[index] = Exemplar(
                {}, value, time.time_ns(), exemplar.span_id, exemplar.trace_id
            )

    def _new_point(self, key: tuple[object, ...], attributes: dict[str, AttributeValue]) -> _Point:
        if len(self._points) >= CARDINALITY_LIMIT:
            point = self._points.get(_OVERFLOW_KEY)
            if point is None:
                point = self._points[_OVERFLOW_KEY] = _Point(
                    dict(_OVERFLOW_ATTRIBUTES), len(self.boundaries) + 1
                )
            return point
        point = self._points[key] = _Point(dict(attributes), len(self.boundaries) + 1)
        return point

    def totals(self) -> tuple[list[int], float, int]:
        """Bucket counts, sum and count over every attribute set together."""
        with self._lock:
            counts = [0] * (len(self.boundaries) + 1)
            total_sum, total = 0.0, 0
            for point in list(self._points.values()):
                point_counts = list(point.counts)
                for i, c in enumerate(point_counts):
                    counts[i] += c
                total_sum += point.sum
                total += sum(point_counts)
        return counts, total_sum, total

    def per_attributes(self) -> list[tuple[dict[str, AttributeValue], list[int], float, int]]:
        """(attributes, bucket counts, sum, count) per attribute set."""
        with self._lock:
            return [
                (dict(p.attributes), counts, p.sum, sum(counts))
                for p in list(self._points.values())
                for counts in (list(p.counts),)
            ]

    def to_metric(self, now_ns: int) -> Metric | None:
        with self._lock:
            points = [
                HistogramDataPoint(
                    attributes=p.attributes,
                    start_time_unix_nano=self._start_ns,
                    time_unix_nano=now_ns,
                    count=sum(counts),
                    sum=p.sum,
                    bucket_counts=counts,
                    explicit_bounds=self.boundaries,
                    min=p.min,
                    max=p.max,
                    exemplars=[e for e in p.exemplars if e is not None],
                )
                for p in list(self._points.values())
                for counts in (list(p.counts),)
            ]
        if not points:
            return None
        return Metric(
            name=self.name,
            description=self.description,
            unit=self.unit,
            data=Histogram(
                data_points=points, aggregation_temporality=AggregationTemporality.CUMULATIVE
            ),
        )


@dataclass
class FastHistograms:
    """The set of pre-aggregated histograms of one pipeline, merged into every collection."""

    scope: InstrumentationScope
    histograms: tuple[FastHistogram, ...]

    def merge_into(self, data: MetricsData) -> MetricsData:
        now = time.time_ns()
        extra = [m for m in (h.to_metric(now) for h in self.histograms) if m is not None]
        if not extra:
            return data
        resource_metrics = list(data.resource_metrics)
        if not resource_metrics:
            return data
        first = resource_metrics[0]
        scopes = list(first.scope_metrics)
        for i, scope_metrics in enumerate(scopes):
            if scope_metrics.scope.name == self.scope.name:
                scopes[i] = replace(scope_metrics, metrics=[*scope_metrics.metrics, *extra])
                break
        else:
            scopes.append(ScopeMetrics(scope=self.scope, metrics=extra, schema_url=""))
        resource_metrics[0] = ResourceMetrics(
            resource=first.resource, scope_metrics=scopes, schema_url=first.schema_url
        )
        return MetricsData(resource_metrics=resource_metrics)
