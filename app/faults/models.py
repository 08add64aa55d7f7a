"""The fault knobs: one document, every value bounded, replaced whole by each PUT."""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_BALLAST_MB: Final = 2048
"""Most memory the ballast (leak included) may ever hold."""
MAX_LATENCY_MS: Final = 10_000
MAX_LEAK_MB_PER_MINUTE: Final = 1024
DEFAULT_LEAK_MAX_MB: Final = 64
"""A leak stops growing here unless told otherwise: enough for the leak alert's trend, well
below the memory alert's threshold on top of a normal footprint."""


class FaultSettings(BaseModel):
    """What is broken right now; the defaults break nothing."""

    # Unknown fields are refused: a misspelt knob must not look like it was applied.
    model_config = ConfigDict(extra="forbid", frozen=True)

    upstream_latency_ms: float = Field(
        0.0, ge=0, le=MAX_LATENCY_MS, description="Added before every upstream call."
    )
    upstream_error_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Fraction of upstream calls that fail as unavailable (503) without being sent.",
    )
    force_cache_miss: bool = Field(
        False, description="Every cache read misses and goes to its loader (the upstream)."
    )
    ballast_mb: int = Field(
        0,
        ge=0,
        le=MAX_BALLAST_MB,
        description="Resident memory held, in MiB; each PUT resizes the ballast to this.",
    )
    leak_mb_per_minute: float = Field(
        0.0,
        ge=0,
        le=MAX_LEAK_MB_PER_MINUTE,
        description="Growth of the ballast after the PUT, in MiB per minute, up to leak_max_mb.",
    )
    leak_max_mb: int = Field(
        DEFAULT_LEAK_MAX_MB,
        ge=0,
        le=MAX_BALLAST_MB,
        description="Ballast size at which the leak stops growing, in MiB.",
    )

    @model_validator(mode="after")
    def _leak_has_room(self) -> FaultSettings:
        if self.leak_mb_per_minute > 0 and self.leak_max_mb <= self.ballast_mb:
            raise ValueError("leak_max_mb must exceed ballast_mb, or the leak cannot grow")
        return self
