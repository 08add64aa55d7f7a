"""Alertmanager's webhook payload (version 4), validated and bounded.

Field names follow Alertmanager's JSON (camelCase) both ways: the history and the dashboards see
a notification exactly as Alertmanager describes it. Every string, mapping and list has a cap,
so a hostile or broken sender cannot make the app hold more than a known amount per
notification; unknown fields are ignored, so a newer Alertmanager still gets through.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
)
from pydantic.alias_generators import to_camel

MAX_ALERTS: Final = 200
"""Alerts in one notification; the committed Alertmanager config sends at most 50."""
MAX_PAIRS: Final = 64
"""Labels (or annotations) of one alert or group."""

Status = Literal["firing", "resolved"]
# A timestamp is an RFC 3339 string, as the schema documents; lax mode would also take a number.
Timestamp = Annotated[AwareDatetime, Strict()]


def _not_a_boolean(value: object) -> object:
    # JSON Schema's integer includes 3.0 (lax mode takes it) but not `false` (lax mode takes it).
    if isinstance(value, bool):
        raise ValueError("Input should be a valid integer")
    return value


MAX_COUNT: Final = 2**53 - 1
"""The largest integer every JSON reader (a browser dashboard included) holds exactly; a larger
count could not even be serialized back into the history."""

Count = Annotated[int, Field(ge=0, le=MAX_COUNT), BeforeValidator(_not_a_boolean)]
_Key = Annotated[str, StringConstraints(min_length=1, max_length=128)]
_LabelValue = Annotated[str, StringConstraints(max_length=1024)]
_AnnotationValue = Annotated[str, StringConstraints(max_length=8192)]
_Url = Annotated[str, StringConstraints(max_length=2048)]
Labels = Annotated[dict[_Key, _LabelValue], Field(max_length=MAX_PAIRS)]
Annotations = Annotated[dict[_Key, _AnnotationValue], Field(max_length=MAX_PAIRS)]


class _AlertmanagerModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_alias=True,
        validate_by_name=False,
        serialize_by_alias=True,
        extra="ignore",
        frozen=True,
    )


class WebhookAlert(_AlertmanagerModel):
    status: Status
    labels: Labels
    annotations: Annotations = Field(default_factory=dict)
    starts_at: Timestamp
    # Alertmanager sends 0001-01-01T00:00:00Z while an alert is still firing.
    ends_at: Timestamp | None = None
    generator_url: _Url = Field("", alias="generatorURL")
    fingerprint: Annotated[str, StringConstraints(max_length=64)] = ""


class WebhookPayload(_AlertmanagerModel):
    version: Literal["4"]
    group_key: Annotated[str, StringConstraints(max_length=4096)]
    truncated_alerts: Count = 0
    status: Status
    receiver: Annotated[str, StringConstraints(max_length=256)]
    group_labels: Labels = Field(default_factory=dict)
    common_labels: Labels = Field(default_factory=dict)
    common_annotations: Annotations = Field(default_factory=dict)
    external_url: _Url = Field("", alias="externalURL")
    alerts: Annotated[list[WebhookAlert], Field(min_length=1, max_length=MAX_ALERTS)]
