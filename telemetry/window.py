"""Recent values of the alerting inputs, computed in-process the way the rules compute them.

The monitoring API's `/bottlenecks` must say which alert thresholds are breached *now*, with the
same numbers Prometheus would see. A sampler snapshots the cumulative counters behind the metrics
(cache lookups and hits, the request-duration buckets, RSS) every few seconds into a bounded ring;
rates over the alerts' 5-minute window, the p95 by Prometheus' `histogram_quantile` interpolation,
and the RSS trend by the least-squares fit `deriv`/`predict_linear` use, are computed from it.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from app.periodic import Periodic

RATE_WINDOW_SECONDS: Final = 300.0


@dataclass(frozen=True, slots=True)
class Snapshot:
    at: float  # monotonic seconds
    cache_lookups: int
    cache_hits: int
    http_buckets: tuple[int, ...]  # per bucket (not cumulative), last one is +Inf
    rss_bytes: int


def histogram_quantile(q: float, bounds: Sequence[float], counts: Sequence[int]) -> float:
    """Prometheus' estimate: linear interpolation inside the bucket holding the q-th rank.

    `counts` are per-bucket (len(bounds) + 1, the last being +Inf). Like Prometheus, a rank in
    the +Inf bucket answers the highest finite bound, and no observations answer NaN.
    """
    total = sum(counts)
    if total == 0:
        return math.nan
    rank = q * total
    seen = 0.0
    for i, count in enumerate(counts):
        if seen + count >= rank and count > 0:
            if i == len(bounds):
                return bounds[-1]
            lower = bounds[i - 1] if i > 0 else 0.0
            upper = bounds[i]
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    return bounds[-1]


def least_squares(points: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """(slope, value fitted at the last point's time), as `deriv` and `predict_linear` fit."""
    if len(points) < 2:
        return None
    n = len(points)
    mean_t = sum(t for t, _ in points) / n
    mean_v = sum(v for _, v in points) / n
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var == 0:
        return None
    slope = sum((t - mean_t) * (v - mean_v) for t, v in points) / var
    last_t = points[-1][0]
    return slope, mean_v + slope * (last_t - mean_t)


class RecentWindow:
    """A ring of snapshots covering `horizon` seconds, taken every `interval` seconds.

    `on_sample` sees each snapshot as it is taken: the live alert checks are evaluated there, at
    a steady pace like Prometheus' evaluation interval, so a `for:` means "held at every
    evaluation" and not "held whenever somebody happened to ask".
    """

    def __init__(
        self,
        take: Callable[[], Snapshot],
        *,
        interval: float = 15.0,
        horizon: float = 3600.0,
        on_sample: Callable[[Snapshot], object] | None = None,
    ) -> None:
        self._take = take
        self.interval = interval
        self._on_sample = on_sample
        self._ring: deque[Snapshot] = deque(maxlen=max(2, math.ceil(horizon / interval) + 1))
        self._sampler = Periodic("telemetry-window", interval, self._sample)

    @property
    def task(self) -> Periodic:
        return self._sampler

    def _sample(self) -> None:
        snapshot = self._take()
        self._ring.append(snapshot)
        if self._on_sample is not None:
            self._on_sample(snapshot)

    def start(self) -> None:
        self._sample()
        self._sampler.start()

    async def stop(self) -> None:
        await self._sampler.stop()

    def now(self) -> Snapshot:
        return self._take()

    def baseline(self, now: Snapshot, seconds: float = RATE_WINDOW_SECONDS) -> Snapshot | None:
        """The oldest snapshot within `seconds` before `now` (the start of a rate window)."""
        for snap in self._ring:
            if now.at - snap.at <= seconds and now.at > snap.at:
                return snap
        return None

    def history_seconds(self, now: Snapshot, seconds: float) -> float:
        """How far back, within `seconds` before `now`, the ring reaches."""
        oldest = next((s.at for s in self._ring if now.at - s.at <= seconds), now.at)
        return max(0.0, now.at - oldest)

    def rss_series(self, now: Snapshot, seconds: float) -> list[tuple[float, float]]:
        points = [(s.at, float(s.rss_bytes)) for s in self._ring if now.at - s.at <= seconds]
        if not points or points[-1][0] < now.at:
            points.append((now.at, float(now.rss_bytes)))
        return points
