"""Where dashboards point: each other, and the runbook section of each alert.

RUNBOOK_BASE_URL is the only place that says where the runbooks live. It is the repository path
that alert annotations use today (`telemetry.thresholds.RUNBOOK_DOC`); set it to an absolute URL
(the rendered docs/runbooks.md) when the docs are published, and regenerate.
"""

from __future__ import annotations

import re
from typing import Final

from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.models import dashboard as models

from telemetry.thresholds import RUNBOOK_DOC, Threshold

RUNBOOK_BASE_URL: Final = RUNBOOK_DOC
DASHBOARD_TAG: Final = "market-api"
"""Every dashboard carries it; the dashboards' link menu lists the dashboards by this tag."""
# Grafana keeps the time range and the variables ($datasource, $job, $instance) across a jump.
_CARRY_STATE: Final = "?${__url_time_range}&${__all_variables}"


def slug(title: str) -> str:
    """The slug Grafana puts after the uid in `/d/<uid>/<slug>` URLs."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def dashboard_path(uid: str, title: str) -> str:
    return f"/d/{uid}/{slug(title)}"


def runbook_url(threshold: Threshold) -> str:
    return f"{RUNBOOK_BASE_URL}#{threshold.runbook_anchor}"


def runbook_link(threshold: Threshold) -> builders.DashboardLink:
    return (
        builders.DashboardLink(f"Runbook: {threshold.alert}")
        .type(models.DashboardLinkType.LINK)
        .url(runbook_url(threshold))
        .target_blank(True)
    )


def dashboard_link(uid: str, title: str) -> builders.DashboardLink:
    """A panel link to another dashboard of the service, same time range and variables."""
    return (
        builders.DashboardLink(f"Open: {title}")
        .type(models.DashboardLinkType.LINK)
        .url(dashboard_path(uid, title) + _CARRY_STATE)
    )


def sibling_dashboards() -> builders.DashboardLink:
    """The dashboard-level menu of every dashboard tagged DASHBOARD_TAG."""
    return (
        builders.DashboardLink("Market API dashboards")
        .type(models.DashboardLinkType.DASHBOARDS)
        .tags([DASHBOARD_TAG])
        .as_dropdown(True)
        .include_vars(True)
        .keep_time(True)
    )


def runbooks() -> builders.DashboardLink:
    """The dashboard-level link to the runbooks, every alert's section in one page."""
    return (
        builders.DashboardLink("Runbooks")
        .type(models.DashboardLinkType.LINK)
        .url(RUNBOOK_BASE_URL)
        .icon("doc")
        .target_blank(True)
    )
