"""Dependencies between `app` and `telemetry` point one way (docs/telemetry.md, "How the app
reaches its telemetry").

`app/` defines the interfaces it calls; `telemetry/` implements them. Only the composition root
(app/main.py, app/cli.py) may import `telemetry`, and `telemetry` never imports the composition
root or the API layer it would then depend on.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPOSITION_ROOT = frozenset({"app/main.py", "app/cli.py"})
NOT_FOR_TELEMETRY = ("app.main", "app.cli", "app.api", "app.services")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_in(source: str, package: list[str]) -> Iterator[str]:
    """Every module `source` imports, anywhere in it (functions and TYPE_CHECKING blocks too);
    `package` resolves relative imports."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            yield module
            # `from app import main` imports app.main.
            yield from (f"{module}.{alias.name}" for alias in node.names)


def imported_modules(path: Path) -> Iterator[str]:
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    return imports_in(path.read_text(), package)


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_the_scan_sees_imports_of_every_form() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "import telemetry.http\n"
        "if TYPE_CHECKING:\n"
        "    from telemetry.runtime import Telemetry\n"
        "def build():\n"
        "    from .. import services\n"
        "    from . import lifecycle\n"
    )
    found = set(imports_in(source, ["app", "ws"]))
    assert {"telemetry.http", "telemetry.runtime", "app.services", "app.ws.lifecycle"} <= found


@pytest.mark.parametrize("path", _sources("app"), ids=lambda p: str(p.relative_to(ROOT)))
def test_only_the_composition_root_imports_telemetry(path: Path) -> None:
    if str(path.relative_to(ROOT)) in COMPOSITION_ROOT:
        return
    offending = sorted(m for m in imported_modules(path) if _within(m, "telemetry"))
    assert offending == [], f"{path.relative_to(ROOT)} imports {offending}"


@pytest.mark.parametrize("path", _sources("telemetry"), ids=lambda p: str(p.relative_to(ROOT)))
def test_telemetry_imports_only_the_parts_and_their_hooks(path: Path) -> None:
    offending = sorted(
        m for m in imported_modules(path) if any(_within(m, prefix) for prefix in NOT_FOR_TELEMETRY)
    )
    assert offending == [], f"{path.relative_to(ROOT)} imports {offending}"
