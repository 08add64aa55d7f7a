"""docs/runbooks.md has a section for every alert, where its runbook_url points."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from telemetry.fleet_thresholds import FLEET_THRESHOLDS
from telemetry.thresholds import RUNBOOK_DOC, THRESHOLDS, Threshold

EVERY_ALERT = (*THRESHOLDS, *FLEET_THRESHOLDS)
ROOT = Path(__file__).resolve().parents[2]
RUNBOOKS = (ROOT / RUNBOOK_DOC).read_text()


def anchor(heading: str) -> str:
    """The anchor GitHub (and most Markdown renderers) give a heading."""
    slug = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return slug.replace(" ", "-")


def sections() -> dict[str, str]:
    """Level-2 sections by anchor."""
    parts = re.split(r"(?m)^## (.+)$", RUNBOOKS)
    return {anchor(title): body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


@pytest.mark.parametrize("t", EVERY_ALERT, ids=lambda t: t.alert)
def test_every_alert_has_its_section(t: Threshold) -> None:
    path, _, fragment = t.runbook_url.partition("#")
    assert (ROOT / path).resolve() == (ROOT / RUNBOOK_DOC).resolve()
    assert fragment == t.alert.lower()
    body = sections()[fragment]
    for part in ("**Meaning.**", "**Confirm.**", "**Act.**"):
        assert part in body, f"{t.alert}: {part} missing"
    assert "```promql" in body, f"{t.alert}: no query to confirm it with"


def test_no_section_for_an_alert_that_does_not_exist() -> None:
    assert set(sections()) == {t.runbook_anchor for t in EVERY_ALERT}


def test_links_between_sections_resolve() -> None:
    for target in re.findall(r"\]\(#([^)]+)\)", RUNBOOKS):
        assert target in sections(), target
