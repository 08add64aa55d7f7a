"""The variables every dashboard has: which Prometheus, which job, which instances.

The `job` default is the scrape job the alerts use; `instance` defaults to all instances, with
`.*` as its "All" value so queries stay short however many instances there are.
"""

from __future__ import annotations

from typing import Final

from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.models import dashboard as models

from dashboards.datasources import DATASOURCE_VARIABLE, PROMETHEUS_TYPE, PROMETHEUS_UID
from dashboards.promql import JOB_MATCHER
from telemetry.thresholds import JOB

PROMETHEUS: Final = models.DataSourceRef(
    type_val=PROMETHEUS_TYPE, uid=f"${{{DATASOURCE_VARIABLE}}}"
)
"""What every Prometheus panel and target queries: the datasource the variable picked."""
# A series every instance of the app exports from its first scrape.
_PRESENCE_METRIC: Final = "process_memory_usage_bytes"


def datasource() -> builders.DatasourceVariable:
    return (
        builders.DatasourceVariable(DATASOURCE_VARIABLE)
        .label("Prometheus")
        .type(PROMETHEUS_TYPE)
        .current(models.VariableOption(selected=True, text=PROMETHEUS_UID, value=PROMETHEUS_UID))
    )


def job() -> builders.QueryVariable:
    return (
        builders.QueryVariable("job")
        .label("Job")
        .datasource(PROMETHEUS)
        .query(f"label_values({_PRESENCE_METRIC}, job)")
        .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(models.VariableSort.ALPHABETICAL_ASC)
        .current(models.VariableOption(selected=True, text=JOB, value=JOB))
    )


def instance() -> builders.QueryVariable:
    return (
        builders.QueryVariable("instance")
        .label("Instance")
        .datasource(PROMETHEUS)
        .query(f"label_values({_PRESENCE_METRIC}{{{JOB_MATCHER}}}, instance)")
        .refresh(models.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(models.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
        .current(models.VariableOption(selected=True, text=["All"], value=["$__all"]))
    )


def every_variable() -> list[builders.QueryVariable | builders.DatasourceVariable]:
    return [datasource(), job(), instance()]
