"""The datasource uids Grafana is provisioned with, named once.

Dashboards refer to datasources by uid, so a dashboard and the provisioning file must agree on
the exact strings; the dashboard lint test and the provisioning test both read them from here.
"""

from __future__ import annotations

from typing import Final

PROMETHEUS_UID: Final = "prometheus"
TEMPO_UID: Final = "tempo"
ALERTMANAGER_UID: Final = "alertmanager"

PROVISIONED_UIDS: Final = frozenset({PROMETHEUS_UID, TEMPO_UID, ALERTMANAGER_UID})
"""Every datasource uid a dashboard may name."""

PROMETHEUS_TYPE: Final = "prometheus"
TEMPO_TYPE: Final = "tempo"
ALERTMANAGER_TYPE: Final = "alertmanager"

DATASOURCE_VARIABLE: Final = "datasource"
"""The dashboard variable that picks the Prometheus datasource; its default is PROMETHEUS_UID."""
