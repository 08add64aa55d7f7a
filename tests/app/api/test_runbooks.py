"""Runbook links are absolute: the app's own /runbooks page, or RUNBOOK_BASE_URL."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.api.runbooks import render
from app.main import create_app
from telemetry.thresholds import RUNBOOK_DOC, THRESHOLDS
from tests.conftest import make_settings
from tests.support.app_client import running_app
from tests.telemetry.conftest import traced_app

ROOT = Path(__file__).resolve().parents[3]


async def test_the_app_serves_the_runbooks_with_an_anchor_per_alert() -> None:
    async with running_app(create_app(make_settings(), telemetry=None)) as (client, _):
        response = await client.get("/runbooks")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = response.text
    ids = set(re.findall(r'id="([^"]+)"', page))
    assert {t.runbook_anchor for t in THRESHOLDS} <= ids
    assert "://" not in page.split("<body>")[0], "the page loads nothing from elsewhere"
    # The served copy is the documentation itself, not a second text.
    for heading in re.findall(r"(?m)^## (.+)$", (ROOT / RUNBOOK_DOC).read_text()):
        assert f">{heading}</h2>" in page


async def test_bottlenecks_link_to_the_apps_own_page_by_default() -> None:
    async with traced_app() as t:
        report = (await t.client.get("/api/monitoring/performance/bottlenecks")).json()
        page = (await t.client.get("/runbooks")).text
    for check in report["checks"]:
        url, _, fragment = check["runbook_url"].partition("#")
        assert url == "http://test/runbooks"
        assert f'id="{fragment}"' in page


async def test_bottlenecks_link_to_the_configured_base_url() -> None:
    base = "https://wiki.example.org/ops/market-api-runbooks"
    async with traced_app(make_settings(runbook_base_url=base)) as t:
        report = (await t.client.get("/api/monitoring/performance/bottlenecks")).json()
    assert {c["runbook_url"] for c in report["checks"]} == {
        f"{base}#{t.alert.lower()}" for t in THRESHOLDS
    }


@pytest.mark.parametrize("bad", ["docs/runbooks.md", "wiki.example.org/x", "ftp://x/y", "http://"])
def test_a_relative_or_odd_base_url_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError, match="runbook_base_url"):
        make_settings(runbook_base_url=bad)


def test_rendering_escapes_markup_and_keeps_code_verbatim() -> None:
    page = render(
        "# Title\n\n## Alert One\n\nText with <b>tags</b>, **bold**, `code` and "
        "[a link](#alert-one).\n\n```promql\nrate(x[5m]) > 1 <script>\n```\n"
    )
    assert '<h2 id="alert-one">Alert One</h2>' in page
    assert "&lt;b&gt;tags&lt;/b&gt;" in page
    assert "<strong>bold</strong>" in page
    assert "<code>code</code>" in page
    assert '<a href="#alert-one">a link</a>' in page
    assert "<pre><code>rate(x[5m]) &gt; 1 &lt;script&gt;</code></pre>" in page
