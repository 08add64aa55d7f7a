"""The committed dashboard JSON is what the Python generates, byte for byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.cog import plugins
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as models

from dashboards import catalog
from dashboards.generate import main, rendered
from dashboards.queries import JSON_DIR

COMMITTED = {p.name: p.read_text() for p in JSON_DIR.glob("*.json")}


def test_regenerating_leaves_no_diff() -> None:
    assert rendered() == COMMITTED, "run: python -m dashboards.generate"


def test_one_file_per_dashboard_named_after_its_uid() -> None:
    assert set(COMMITTED) == {f"{entry.uid}.json" for entry in catalog.ALL}
    for name, text in COMMITTED.items():
        data = json.loads(text)
        assert f"{data['uid']}.json" == name
        assert (data["uid"], data["title"]) in set(catalog.ALL)


def test_output_is_stable_json_with_a_trailing_newline() -> None:
    for text in COMMITTED.values():
        data = json.loads(text)
        assert text == json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_classic_dashboard_json_not_schema_v2() -> None:
    for text in COMMITTED.values():
        data = json.loads(text)
        assert isinstance(data["panels"], list)
        assert isinstance(data["templating"]["list"], list)
        assert data["schemaVersion"] >= 39
        assert "elements" not in data
        assert "layout" not in data


def test_check_mode_tells_stale_from_fresh(tmp_path: Path) -> None:
    assert main(["--check", "--output-dir", str(tmp_path)]) == 1
    assert main(["--output-dir", str(tmp_path)]) == 0
    assert {p.name: p.read_text() for p in tmp_path.glob("*.json")} == COMMITTED
    assert main(["--check", "--output-dir", str(tmp_path)]) == 0
    overview = tmp_path / f"{catalog.OVERVIEW.uid}.json"
    overview.write_text(overview.read_text().replace("$__rate_interval", "5m"))
    assert main(["--check", "--output-dir", str(tmp_path)]) == 1


def test_a_dashboard_whose_uid_is_gone_is_stale_and_removed(tmp_path: Path) -> None:
    main(["--output-dir", str(tmp_path)])
    orphan = tmp_path / "market-api-old.json"
    orphan.write_text(json.dumps({"uid": "market-api-old", "tags": ["market-api"]}))
    unrelated = tmp_path / "someone-else.json"
    unrelated.write_text(json.dumps({"uid": "other", "tags": ["other"]}))
    assert main(["--check", "--output-dir", str(tmp_path)]) == 1
    assert main(["--output-dir", str(tmp_path)]) == 0
    assert not orphan.exists()
    assert unrelated.exists()


def contained(part: Any, whole: Any) -> bool:
    """`part` is `whole` with some default-valued keys left out."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            k in whole and contained(v, whole[k]) for k, v in part.items()
        )
    if isinstance(part, list):
        return (
            isinstance(whole, list)
            and len(part) == len(whole)
            and all(contained(p, w) for p, w in zip(part, whole, strict=True))
        )
    return bool(part == whole)


def test_the_json_fits_the_sdk_models_of_grafana_11_6() -> None:
    # Parsing with the SDK's models and encoding again keeps every field: nothing in the JSON
    # is unknown to the schema the SDK build was generated from (the model adds defaults only).
    plugins.register_default_plugins()
    for text in COMMITTED.values():
        data = json.loads(text)
        again = json.loads(json.dumps(models.Dashboard.from_json(data), cls=JSONEncoder))
        assert contained(data, again), data["uid"]
