"""`market-api`'s command line: options override the environment, checks start nothing."""

from __future__ import annotations

import pytest

from app import cli
from app.cli import main, settings_from_command_line
from app.ws.server import GracefulServer


@pytest.fixture(autouse=True)
def _no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """A test that reached the server would bind a port: fail instead."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("the server was started")

    monkeypatch.setattr(GracefulServer, "run", refuse)


def test_host_and_port_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APP_HOST", "127.0.0.2")
    monkeypatch.setenv("APP_PORT", "1234")
    assert settings_from_command_line([]).app_port == 1234
    settings = settings_from_command_line(["--host", "127.0.0.3", "--port", "4321"])
    assert (settings.app_host, settings.app_port) == ("127.0.0.3", 4321)


@pytest.mark.parametrize("argv", [["--help"], ["--version"]])
def test_help_and_version_exit_0_without_serving(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: market-api") if argv == ["--help"] else "market-api " in out


def test_version_is_the_installed_distributions() -> None:
    from importlib.metadata import version

    assert cli._package_version() == version("market-api")


def test_check_config_prints_one_line_and_exits_0(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MEMCACHED_SERVERS", "127.0.0.1:11311")
    with pytest.raises(SystemExit) as exit_:
        main(["--check-config", "--port", "9001"])
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1
    assert out.startswith("configuration ok: listen 127.0.0.1:9001, memcached 127.0.0.1:11311")


@pytest.mark.parametrize(
    ("env", "argv", "named"),
    [
        ({"APP_PORT": "eighty"}, ["--check-config"], "APP_PORT"),
        ({"MEMCACHED_SERVERS": "nohost"}, ["--check-config"], "MEMCACHED_SERVERS"),
        ({"CACHE_CONNECTION_POOL_MIN": "30"}, [], "CACHE_CONNECTION_POOL_MIN"),
        ({}, ["--port", "70000"], "APP_PORT"),
    ],
)
def test_invalid_configuration_exits_2_with_the_reason(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    argv: list[str],
    named: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("market-api: invalid configuration:")
    assert named in err
    assert "Traceback" not in err


def test_unknown_option_exits_2_with_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--bogus-flag"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: market-api")
    assert "unrecognized arguments: --bogus-flag" in err


def test_forwarded_headers_are_believed_from_configured_proxies_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fastapi import FastAPI

    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    plain = cli.server_config(FastAPI(), settings_from_command_line([]))
    assert plain.proxy_headers is False, "uvicorn's default would trust every local client"

    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "127.0.0.2, 10.0.0.0/8")
    proxied = cli.server_config(FastAPI(), settings_from_command_line([]))
    assert proxied.proxy_headers is True
    assert proxied.forwarded_allow_ips == ["127.0.0.2", "10.0.0.0/8"]


def test_a_proxy_that_is_no_address_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "nginx.local")
    with pytest.raises(SystemExit) as exit_info:
        settings_from_command_line([])
    assert exit_info.value.code == 2
    assert "FORWARDED_ALLOW_IPS" in capsys.readouterr().err
