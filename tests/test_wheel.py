"""The wheel, installed into a fresh virtualenv outside the repository, runs every console script.

Builds the wheel from this checkout (no build isolation: hatchling comes from the dev extra),
installs it with `constraints.txt` into a new venv in a temporary directory, and runs each script
from another temporary directory, so nothing can be imported from the source tree. The venv is
made once for the module (about half a minute with a warm pip cache).
"""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from devstack.process import free_port, wait_for_port
from devstack.readiness import wait_http_ready

pytestmark = [pytest.mark.server, pytest.mark.wheel]

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints.txt"
SCRIPTS = ("market-api", "market-exchange-sim", "market-load", "market-stack")


@dataclass(frozen=True)
class Installed:
    bin: Path
    cwd: Path
    env: dict[str, str]

    def script(self, name: str) -> str:
        return str(self.bin / name)

    def run(self, *argv: str, timeout: float = 60, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(argv),
            cwd=self.cwd,
            env={**self.env, **env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def _check(argv: list[str], timeout: float = 600) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{argv}:\n{result.stdout}\n{result.stderr}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    root = tmp_path_factory.mktemp("wheel")
    dist, venv, cwd = root / "dist", root / "venv", root / "elsewhere"
    cwd.mkdir()
    _check([sys.executable, "-m", "build", "--wheel", "--no-isolation", "-o", str(dist), str(ROOT)])
    [wheel] = dist.glob("market_api-*.whl")
    _check([sys.executable, "-m", "venv", str(venv)])
    pip = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "-q",
        "--disable-pip-version-check",
    ]
    _check([*pip, "-c", str(CONSTRAINTS), "--find-links", str(dist), str(wheel)])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return Installed(venv / "bin", cwd, env)


def test_the_package_is_imported_from_the_venv_not_the_checkout(installed: Installed) -> None:
    result = installed.run(
        installed.script("python"),
        "-c",
        "import app, alerts, devstack, telemetry; print(app.__file__, alerts.__file__)",
    )
    assert result.returncode == 0, result.stderr
    for path in result.stdout.split():
        assert Path(path).is_relative_to(installed.bin.parent), path


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_and_unknown_options(installed: Installed, script: str) -> None:
    helped = installed.run(installed.script(script), "--help")
    assert helped.returncode == 0, helped.stderr
    assert helped.stdout.startswith(f"usage: {script}"), helped.stdout
    refused = installed.run(installed.script(script), "--bogus-flag")
    assert refused.returncode == 2
    assert "usage:" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_market_api_version_and_check_config(installed: Installed) -> None:
    version = installed.run(installed.script("market-api"), "--version")
    assert (version.returncode, version.stdout.strip()) == (0, "market-api 0.1.0")
    ok = installed.run(installed.script("market-api"), "--check-config")
    assert ok.returncode == 0
    assert ok.stdout.startswith("configuration ok:")
    bad = installed.run(installed.script("market-api"), "--check-config", APP_PORT="http")
    assert bad.returncode == 2
    assert "APP_PORT" in bad.stderr
    assert "Traceback" not in bad.stderr


@contextlib.contextmanager
def serving(installed: Installed, argv: list[str], **env: str) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen(
        argv,
        cwd=installed.cwd,
        env={**installed.env, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()


def test_market_api_and_market_load_from_the_wheel(installed: Installed) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [installed.script("market-api"), "--port", str(port)]
    with serving(installed, argv, ENABLE_FAULT_INJECTION="true", LOG_LEVEL="warning") as proc:
        wait_http_ready(f"{url}/api/monitoring/performance/health", timeout=30)
        with httpx.Client(base_url=url, timeout=10) as client:
            assert client.get("/api/market/movers").status_code == 200
            docs = client.get("/docs")
            assert docs.status_code == 200
            assert client.get("/static-offline-docs/swagger-ui-bundle.js").status_code == 200
            runbooks = client.get("/runbooks")
            assert runbooks.status_code == 200
            assert 'id="marketapidown"' in runbooks.text
            report = client.get("/api/monitoring/performance/bottlenecks").json()
            assert report["checks"][0]["runbook_url"].startswith(f"{url}/runbooks#")
        load = installed.run(
            installed.script("market-load"),
            "--url",
            url,
            "--duration",
            "2",
            "--rate",
            "10",
            "--websockets",
            "0",
        )
        assert load.returncode == 0, load.stdout + load.stderr
        proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down gracefully, then re-raises the signal: the exit status says SIGTERM.
        assert proc.wait(30) in (0, -signal.SIGTERM)
        assert proc.stdout is not None
        assert "Traceback" not in proc.stdout.read()


def test_market_exchange_sim_from_the_wheel(installed: Installed) -> None:
    port = free_port()
    argv = [installed.script("market-exchange-sim"), "--port", str(port), "--symbols", "10"]
    with serving(installed, argv):
        wait_for_port("127.0.0.1", port, timeout=30)
        tickers = httpx.get(f"http://127.0.0.1:{port}/tickers", timeout=10)
        assert tickers.status_code == 200
        assert len(tickers.json()) == 10


def _lines(proc: subprocess.Popen[str]) -> queue.Queue[str]:
    """The process' output, line by line, readable with a timeout."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def _read_until(lines: queue.Queue[str], marker: str, timeout: float) -> str:
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while not any(marker in line for line in seen):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"no {marker!r} within {timeout}s:\n{''.join(seen)}")
        with contextlib.suppress(queue.Empty):
            seen.append(lines.get(timeout=remaining))
    return "".join(seen)


@pytest.mark.parametrize("stop_with", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_market_stack_from_the_wheel(installed: Installed, stop_with: signal.Signals) -> None:
    ports = {name: free_port() for name in ("app", "memcached", "prometheus", "alertmanager")}
    argv = [installed.script("market-stack")]
    for name, port in ports.items():
        argv += [f"--{name}-port", str(port)]
    with serving(installed, argv, LOG_LEVEL="warning") as proc:
        lines = _lines(proc)
        banner = _read_until(lines, "Ctrl-C stops everything.", timeout=90)
        for name in ("app", "prometheus", "alertmanager"):
            assert f"http://127.0.0.1:{ports[name]}" in banner, banner
        assert f"127.0.0.1:{ports['memcached']}" in banner
        # Prometheus loaded the rules shipped in the package.
        rules = httpx.get(f"http://127.0.0.1:{ports['prometheus']}/api/v1/rules", timeout=10)
        names = {r["name"] for g in rules.json()["data"]["groups"] for r in g["rules"]}
        assert "MarketApiMemoryLeakSuspected" in names
        proc.send_signal(stop_with)
        assert proc.wait(60) == 0
        _read_until(lines, "market-stack: stopping", timeout=5)
    for port in ports.values():
        with pytest.raises(TimeoutError):
            wait_for_port("127.0.0.1", port, timeout=0.3)
