"""Counters of what the cache did, kept as plain integers on the hot path.

They feed the monitoring API directly and the OpenTelemetry observable counters at collection
time, so both always agree and counting costs a dict update, not an SDK call.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class CacheStats:
    requests: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(namespace, "hit"|"miss", backend) -> count"""
    sets: Counter[str] = field(default_factory=Counter)
    deletes: Counter[str] = field(default_factory=Counter)
    invalidations: Counter[str] = field(default_factory=Counter)
    fallbacks: Counter[str] = field(default_factory=Counter)
    """reason -> count"""
    leases: Counter[str] = field(default_factory=Counter)
    """lease outcome (app.cache.lease.LeaseOutcome) -> count: how misses went across replicas"""
    errors: int = 0
    oversized: int = 0
    decode_errors: int = 0
    loader_errors: int = 0

    @property
    def hits(self) -> int:
        return sum(n for (_, result, _), n in self.requests.items() if result == "hit")

    @property
    def misses(self) -> int:
        return sum(n for (_, result, _), n in self.requests.items() if result == "miss")

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def per_namespace(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (namespace, result, _), n in self.requests.items():
            row = out.setdefault(namespace, {"hits": 0, "misses": 0, "sets": 0, "deletes": 0})
            row["hits" if result == "hit" else "misses"] += n
        for namespace, n in self.sets.items():
            out.setdefault(namespace, {"hits": 0, "misses": 0, "sets": 0, "deletes": 0})
            out[namespace]["sets"] = n
        for namespace, n in self.deletes.items():
            out.setdefault(namespace, {"hits": 0, "misses": 0, "sets": 0, "deletes": 0})
            out[namespace]["deletes"] = n
        return out
