"""Links between dashboards, to runbooks and from the app resolve to what exists."""

from __future__ import annotations

from app.settings import Settings
from dashboards import catalog
from dashboards.links import RUNBOOK_BASE_URL, dashboard_path, runbook_url, slug
from dashboards.queries import iter_panels, load_dashboards
from telemetry.thresholds import RUNBOOK_DOC, THRESHOLDS


def test_slugs_are_grafanas() -> None:
    assert slug("Market API overview") == "market-api-overview"
    assert slug("Market API WebSockets") == "market-api-websockets"
    assert slug("  Cache: hit rate (%)  ") == "cache-hit-rate"


def test_performance_redirects_to_the_overview() -> None:
    default = Settings.model_fields["grafana_dashboard_url"].default
    assert default == "http://127.0.0.1:3000" + dashboard_path(*catalog.OVERVIEW)


def test_runbook_links_are_the_alerts_runbook_urls() -> None:
    # While the base is the repository path, the links are exactly the alerts' annotations.
    assert RUNBOOK_BASE_URL == RUNBOOK_DOC
    assert {runbook_url(t) for t in THRESHOLDS} == {t.runbook_url for t in THRESHOLDS}


def test_every_dashboard_is_reachable_from_the_overview() -> None:
    dashboards = load_dashboards()
    overview = dashboards[catalog.OVERVIEW.uid]
    urls = {link["url"] for p in iter_panels(overview) for link in p.get("links", [])}
    for entry in catalog.ALL[1:]:
        assert any(u.startswith(dashboard_path(*entry) + "?") for u in urls), entry.uid
    # ...and every dashboard lists the others through the shared tag menu.
    for dashboard in dashboards.values():
        menu = [link for link in dashboard["links"] if link["type"] == "dashboards"]
        assert menu[0]["tags"] == ["market-api"]
        assert menu[0]["includeVars"] is True
        assert menu[0]["keepTime"] is True
