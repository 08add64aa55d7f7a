"""The alert thresholds, defined once.

The Prometheus rules (`alerts/generate.py` renders them from this module), the dashboards'
threshold lines and the `/bottlenecks` endpoint all read these objects, so a number changed here
changes everywhere, and a test fails if the committed rule file still says something else.

Each `Threshold` carries both halves of the same decision: the PromQL that Prometheus evaluates
and `breached()`, the same comparison applied to a value the app measured itself. Pure data and
pure functions only: importing this module has no side effects and needs no SDK.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Final

JOB: Final = "market-api"
"""The Prometheus `job` label: the scrape job is named after `service.name`."""
SELECTOR: Final = f'job="{JOB}"'
RUNBOOK_DOC: Final = "docs/runbooks.md"

RSS_LIMIT_BYTES: Final = 150 * 2**20
"""Resident memory one process may use; also the line the leak prediction must not cross."""
LEAK_WINDOW_SECONDS: Final = 3600
"""History `predict_linear` and `deriv` fit the RSS trend over."""
LEAK_MIN_HISTORY_SECONDS: Final = 1800
"""RSS history the app's own leak check needs before it judges at all: half the window. A fit
over the first minutes of a process sees only its start-up growth, and extrapolated 4 h ahead
that "predicts" gigabytes. Prometheus' range of the same rule reaches across restarts (the
series of an instance outlives its process), the process' own history starts empty."""
LEAK_HORIZON_SECONDS: Final = 4 * 3600
"""How far ahead the fitted trend is extrapolated."""
LATENCY_QUANTILE: Final = 0.95


class Severity(StrEnum):
    """Alertmanager routes on this label: critical pages, warning opens a ticket, info does not
    notify a person."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


class Comparison(StrEnum):
    """A PromQL filter operator; the value is its PromQL spelling."""

    GT = ">"
    GE = ">="
    LT = "<"
    EQ = "=="

    def holds(self, left: float, right: float) -> bool:
        """Same semantics as the PromQL filter, NaN included: NaN never passes."""
        return _OPERATORS[self](left, right)


_OPERATORS: Final[Mapping[Comparison, Callable[[float, float], bool]]] = {
    Comparison.GT: operator.gt,
    Comparison.GE: operator.ge,
    Comparison.LT: operator.lt,
    Comparison.EQ: operator.eq,
}


class Unit(StrEnum):
    """Unit of a compared value, spelled as Grafana's unit ids so threshold lines can use it."""

    RATIO = "percentunit"
    SECONDS = "s"
    BYTES = "bytes"
    COUNT = "short"
    REQUESTS_PER_SECOND = "reqps"
    BYTES_PER_SECOND = "Bps"
    NONE = "none"


def promql_number(value: float) -> str:
    """The literal written into PromQL: integral values without a decimal point, others in
    Python's shortest round-trip form, so the text parses back to exactly `value`."""
    if not math.isfinite(value):
        raise ValueError(f"a threshold must be finite, got {value!r}")
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass(frozen=True, slots=True)
class Condition:
    """`query op value`: a measured quantity compared with a fixed number."""

    query: str
    op: Comparison
    value: float
    unit: Unit

    @property
    def promql(self) -> str:
        return f"{self.query} {self.op} {promql_number(self.value)}"

    def holds(self, measured: float) -> bool:
        return self.op.holds(float(measured), self.value)


@dataclass(frozen=True, slots=True)
class RecordingRule:
    """A pre-computed series the alerts (and dashboards) query by name."""

    record: str
    expr: str
    labels: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class Threshold:
    """One alert: when it fires, how loud, and the words it fires with.

    `condition` is the threshold itself. `guard`, when set, must hold as well (a minimum request
    rate, a positive growth rate): it keeps the alert quiet where the threshold alone would be
    noise. `absent_query`, when set, also fires the alert when that query returns nothing at all.

    Code that judges live values applies the rest of the rule too: the condition must hold at
    every evaluation for `for_seconds` before the alert counts as firing (pending until then),
    and a threshold over a trend is not judged before `min_history_seconds` of history exist.
    """

    alert: str
    severity: Severity
    for_seconds: int
    condition: Condition
    summary: str
    description: str
    guard: Condition | None = None
    absent_query: str | None = None
    min_history_seconds: int = 0

    @property
    def value(self) -> float:
        return self.condition.value

    @property
    def unit(self) -> Unit:
        return self.condition.unit

    @property
    def for_duration(self) -> str:
        """The `for:` field in Prometheus duration syntax."""
        return _duration(self.for_seconds)

    @property
    def runbook_anchor(self) -> str:
        return self.alert.lower()

    @property
    def runbook_url(self) -> str:
        return f"{RUNBOOK_DOC}#{self.runbook_anchor}"

    @property
    def labels(self) -> Mapping[str, str]:
        """Labels the rule adds to every alert it fires (the series' own labels come on top)."""
        return MappingProxyType({"severity": str(self.severity)})

    @property
    def annotations(self) -> Mapping[str, str]:
        return MappingProxyType(
            {
                "summary": self.summary,
                "description": self.description,
                "runbook_url": self.runbook_url,
            }
        )

    @property
    def expr(self) -> str:
        """The alerting rule's PromQL, one operand per line."""
        parts = [self.condition.promql]
        if self.guard is not None:
            parts += ["and", self.guard.promql]
        if self.absent_query is not None:
            parts += ["or", f"absent({self.absent_query})"]
        return "\n".join(parts)

    def judgeable(self, history_seconds: float) -> bool:
        """Whether `history_seconds` of samples are enough to judge this threshold at all."""
        return history_seconds >= self.min_history_seconds

    def firing(self, held_seconds: float) -> bool:
        """Pending becomes firing once the condition has held for `for_seconds`, as in
        Prometheus (an evaluation exactly `for` after the first one that held fires)."""
        return held_seconds >= self.for_seconds

    def breached(self, value: float, guard_value: float | None = None) -> bool:
        """Whether a value measured now is past the threshold, as the rule would judge it
        (ignoring `for`). A guarded threshold needs `guard_value` too: without it the answer
        would silently differ from the alert's, so that is an error rather than a guess."""
        if self.guard is not None:
            if guard_value is None:
                raise ValueError(
                    f"{self.alert} is only breached when {self.guard.query} "
                    f"{self.guard.op} {promql_number(self.guard.value)}: pass guard_value"
                )
            if not self.guard.holds(guard_value):
                return False
        return self.condition.holds(value)


def _duration(seconds: int) -> str:
    if seconds <= 0:
        raise ValueError("a `for` duration must be positive")
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _sum_rate(metric: str, by: str, matchers: str = "") -> str:
    selector = f"{{{SELECTOR}{', ' + matchers if matchers else ''}}}"
    return f"sum by ({by}) (rate({metric}{selector}[5m]))"


# --- Recording rules -----------------------------------------------------------------------
# Numerator and denominator are aggregated first and divided afterwards: a ratio of sums, never
# a sum or average of per-series ratios. Every series of the job counts (all namespaces, every
# backend: near, memcached, memory; every route and status): nothing is filtered out.

CACHE_REQUESTS_RATE: Final = "job:cache_requests:rate5m"
CACHE_HITS_RATE: Final = "job:cache_hits:rate5m"
CACHE_HIT_RATIO: Final = "job:cache_hits_per_cache_requests:ratio_rate5m"
HTTP_DURATION_BUCKET_RATE: Final = "job_le:http_server_request_duration_seconds_bucket:rate5m"
HTTP_DURATION_QUANTILE: Final = (
    "job_quantile:http_server_request_duration_seconds:histogram_quantile_rate5m"
)

_CACHE_LOOKUPS = _sum_rate("cache_requests_total", "job")
# A job whose lookups all miss may never have exported a hit series: count zero hits then, or the
# ratio (and its alert) would vanish exactly when it matters most.
_CACHE_HITS = "\nor\n".join(
    (_sum_rate("cache_requests_total", "job", 'cache_result="hit"'), f"{_CACHE_LOOKUPS} * 0")
)

RECORDING_RULES: Final[tuple[RecordingRule, ...]] = (
    RecordingRule(CACHE_REQUESTS_RATE, _CACHE_LOOKUPS),
    RecordingRule(CACHE_HITS_RATE, _CACHE_HITS),
    RecordingRule(CACHE_HIT_RATIO, f"{CACHE_HITS_RATE}\n/\n{CACHE_REQUESTS_RATE}"),
    RecordingRule(
        HTTP_DURATION_BUCKET_RATE,
        _sum_rate("http_server_request_duration_seconds_bucket", "job, le"),
    ),
    RecordingRule(
        HTTP_DURATION_QUANTILE,
        f"histogram_quantile({promql_number(LATENCY_QUANTILE)}, {HTTP_DURATION_BUCKET_RATE})",
        MappingProxyType({"quantile": promql_number(LATENCY_QUANTILE)}),
    ),
)

# --- Alerts --------------------------------------------------------------------------------
# Descriptions are %-format strings filled from the numbers above (Go templates use no `%`), so
# the words an alert fires with always quote the threshold it fired on.

CACHE_HIT_RATE_MIN: Final = 0.80
CACHE_MIN_REQUEST_RATE: Final = 1.0
"""Below this many cache lookups per second the hit rate is not judged: idle services stay
quiet."""
LATENCY_MAX_SECONDS: Final = 0.1
WEBSOCKETS_MAX: Final = 100

_RSS = f"process_memory_usage_bytes{{{SELECTOR}}}"
_LEAK_RANGE = f"{_RSS}[{_duration(LEAK_WINDOW_SECONDS)}]"
_TEXT: Final = {
    "hit_rate": f"{CACHE_HIT_RATE_MIN * 100:g}%",
    "min_rate": f"{CACHE_MIN_REQUEST_RATE:g}",
    "latency": f"{LATENCY_MAX_SECONDS * 1000:g}ms",
    "quantile": f"p{LATENCY_QUANTILE * 100:g}",
    "rss": f"{RSS_LIMIT_BYTES / 2**20:g}MiB",
    "websockets": f"{WEBSOCKETS_MAX:d}",
    "window": _duration(LEAK_WINDOW_SECONDS),
    "horizon": _duration(LEAK_HORIZON_SECONDS),
}


def _fill(template: str) -> str:
    return template % _TEXT


CACHE_HIT_RATE_LOW: Final = Threshold(
    alert="MarketApiCacheHitRateLow",
    severity=Severity.WARNING,
    for_seconds=10 * 60,
    condition=Condition(
        f"{CACHE_HIT_RATIO}{{{SELECTOR}}}", Comparison.LT, CACHE_HIT_RATE_MIN, Unit.RATIO
    ),
    guard=Condition(
        f"{CACHE_REQUESTS_RATE}{{{SELECTOR}}}",
        Comparison.GE,
        CACHE_MIN_REQUEST_RATE,
        Unit.REQUESTS_PER_SECOND,
    ),
    summary=_fill("Market API cache hit rate is below %(hit_rate)s."),
    description=_fill(
        "Only {{ $value | humanizePercentage }} of the cache lookups of job {{ $labels.job }} "
        "were hits over the last 5m (threshold %(hit_rate)s, judged at %(min_rate)s lookup/s or "
        "more); the misses go to the upstream exchange."
    ),
)

HIGH_LATENCY: Final = Threshold(
    alert="MarketApiHighLatency",
    severity=Severity.CRITICAL,
    for_seconds=5 * 60,
    condition=Condition(
        f'{HTTP_DURATION_QUANTILE}{{{SELECTOR}, quantile="{promql_number(LATENCY_QUANTILE)}"}}',
        Comparison.GT,
        LATENCY_MAX_SECONDS,
        Unit.SECONDS,
    ),
    summary=_fill("Market API %(quantile)s request latency is above %(latency)s."),
    description=_fill(
        "The %(quantile)s of HTTP request durations of job {{ $labels.job }}, all routes "
        "together, was {{ $value | humanizeDuration }} over the last 5m (threshold "
        "%(latency)s)."
    ),
)

MEMORY_HIGH: Final = Threshold(
    alert="MarketApiMemoryHigh",
    severity=Severity.WARNING,
    for_seconds=5 * 60,
    condition=Condition(
        f"max by (job, instance) ({_RSS})", Comparison.GT, RSS_LIMIT_BYTES, Unit.BYTES
    ),
    summary=_fill("Market API resident memory is above %(rss)s."),
    description=_fill(
        "{{ $labels.instance }} of job {{ $labels.job }} uses {{ $value | humanize1024 }}B "
        "of resident memory (threshold %(rss)s)."
    ),
)

TOO_MANY_WEBSOCKETS: Final = Threshold(
    alert="MarketApiTooManyWebSockets",
    severity=Severity.WARNING,
    for_seconds=5 * 60,
    condition=Condition(
        f"sum by (job, instance) (websocket_connections_active{{{SELECTOR}}})",
        Comparison.GT,
        WEBSOCKETS_MAX,
        Unit.COUNT,
    ),
    summary=_fill("Market API holds more than %(websockets)s open WebSockets."),
    description=_fill(
        "{{ $labels.instance }} of job {{ $labels.job }} holds {{ $value | humanize }} open "
        "WebSocket connections (threshold %(websockets)s per instance)."
    ),
)

MEMORY_LEAK_SUSPECTED: Final = Threshold(
    alert="MarketApiMemoryLeakSuspected",
    severity=Severity.INFO,
    for_seconds=15 * 60,
    condition=Condition(
        f"max by (job, instance) (predict_linear({_LEAK_RANGE}, {LEAK_HORIZON_SECONDS}))",
        Comparison.GT,
        RSS_LIMIT_BYTES,
        Unit.BYTES,
    ),
    guard=Condition(
        f"max by (job, instance) (deriv({_LEAK_RANGE}))", Comparison.GT, 0, Unit.BYTES_PER_SECOND
    ),
    min_history_seconds=LEAK_MIN_HISTORY_SECONDS,
    summary=_fill("Market API resident memory keeps growing towards %(rss)s."),
    description=_fill(
        "The resident memory of {{ $labels.instance }} (job {{ $labels.job }}) grew over the "
        "last %(window)s; at that pace it reaches {{ $value | humanize1024 }}B within "
        "%(horizon)s (threshold %(rss)s)."
    ),
)

SERVICE_DOWN: Final = Threshold(
    alert="MarketApiDown",
    severity=Severity.CRITICAL,
    for_seconds=60,
    condition=Condition(f"up{{{SELECTOR}}}", Comparison.EQ, 0, Unit.NONE),
    absent_query=f"up{{{SELECTOR}}}",
    summary="Market API is down or not scraped at all.",
    description=(
        "{{ if $labels.instance }}Prometheus cannot scrape {{ $labels.instance }} of job "
        "{{ $labels.job }}.{{ else }}Prometheus has no target for job {{ $labels.job }}."
        "{{ end }}"
    ),
)

THRESHOLDS: Final[tuple[Threshold, ...]] = (
    CACHE_HIT_RATE_LOW,
    HIGH_LATENCY,
    MEMORY_HIGH,
    TOO_MANY_WEBSOCKETS,
    MEMORY_LEAK_SUSPECTED,
    SERVICE_DOWN,
)

BY_ALERT: Final[Mapping[str, Threshold]] = MappingProxyType({t.alert: t for t in THRESHOLDS})
