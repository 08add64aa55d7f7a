"""Faults on purpose: a slow or failing upstream, forced cache misses, memory held or leaked.

Enabled by `ENABLE_FAULT_INJECTION` only (development and the end-to-end alert tests), driven
through `/api/admin/faults`, so every alert can be provoked on a running service.
"""

from app.faults.ballast import InsufficientMemory, MemoryBallast
from app.faults.injector import FaultInjector
from app.faults.models import MAX_BALLAST_MB, FaultSettings
from app.faults.upstream import FaultyExchange

__all__ = [
    "MAX_BALLAST_MB",
    "FaultInjector",
    "FaultSettings",
    "FaultyExchange",
    "InsufficientMemory",
    "MemoryBallast",
]
