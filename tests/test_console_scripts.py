"""Every console script the package installs refuses unknown options (exit 2 with usage)."""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest

SCRIPTS: dict[str, str] = tomllib.loads(
    (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
)["project"]["scripts"]


def entry_point(target: str) -> Callable[[list[str]], object]:
    module, _, function = target.partition(":")
    main: Callable[[list[str]], object] = getattr(importlib.import_module(module), function)
    return main


def test_the_four_scripts_are_declared() -> None:
    assert set(SCRIPTS) == {"market-api", "market-exchange-sim", "market-load", "market-stack"}


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_unknown_option_exits_2(script: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        entry_point(SCRIPTS[script])(["--bogus-flag"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: ")
    assert "--bogus-flag" in err


@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_help_exits_0(script: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        entry_point(SCRIPTS[script])(["--help"])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith("usage: ")
