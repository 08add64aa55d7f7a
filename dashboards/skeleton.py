"""What every dashboard of the service shares: uid, tag, variables, links, time settings, and
panel ids assigned in layout order (Grafana addresses panels by id in URLs such as `viewPanel`,
so ids must be unique and stable from one generation to the next)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.models import dashboard as models

from dashboards import links, variables
from dashboards.catalog import Entry


def new(entry: Entry, description: str) -> builders.Dashboard:
    return (
        builders.Dashboard(entry.title)
        .uid(entry.uid)
        .description(description)
        .tags([links.DASHBOARD_TAG])
        .editable()
        .tooltip(models.DashboardCursorSync.CROSSHAIR)
        .time("now-1h", "now")
        .refresh("30s")
        .timezone("browser")
        .variables(list(variables.every_variable()))
        .links([links.sibling_dashboards(), links.runbooks()])
    )


def finish(dashboard: builders.Dashboard) -> models.Dashboard:
    built = dashboard.build()
    next_id = 1
    for panel in built.panels or []:
        panel.id_val = next_id
        next_id += 1
        for inner in panel.panels or [] if isinstance(panel, models.RowPanel) else []:
            inner.id_val = next_id
            next_id += 1
    return built
