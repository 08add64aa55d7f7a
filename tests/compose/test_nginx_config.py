"""devstack/compose/nginx.conf: `nginx -t` accepts it, and a real nginx running it spreads HTTP
and WebSockets over app replicas and routes around one that is gone.

The committed file is written for the image's nginx (1.28): `server app:8000 resolve` re-resolves
the replicas through Docker's DNS, which open-source nginx supports from 1.27.3 on. The nginx
here is Debian's 1.22, which refuses `resolve`, cannot resolve `app` and has no `nginx` user. The
tests therefore run a rendering of the file that changes exactly those things and nothing else:
no `user` line, logs and pid file in a temporary directory, the `resolve` server replaced by one
`server` line per local replica with the same parameters, and a loopback `listen` address. Every
other directive (headers, upgrade map, retries, timeouts, keep-alive, zone) is tested as
committed. What only the image can show, `resolve` following replicas that come and go, is not
tested here.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from app.cli import server_config
from app.settings import Settings
from devstack.process import ManagedProcess, free_port
from tests.app.ws.live import LiveServer, client, subscribe
from tests.compose import stack
from tests.conftest import make_settings

pytestmark = pytest.mark.nginx

SERVER_LINE = re.compile(r"(?m)^(\s*)server app:(\d+) resolve ([^;]*);$")
HEALTH = "/api/monitoring/performance/health"


def nginx_binary() -> str:
    binary = shutil.which("nginx") or shutil.which("/usr/sbin/nginx")
    assert binary is not None, "nginx comes with the Debian package nginx"
    return binary


def local_rendering(config: str, replicas: list[str], listen: str, runtime: Path) -> str:
    """The committed config as nginx 1.22 can run it here (see the module docstring)."""
    text = config
    for old, new in [
        ("user nginx;\n", ""),
        ("/var/log/nginx/", f"{runtime}/"),
        ("/var/run/nginx.pid", f"{runtime}/nginx.pid"),
    ]:
        assert old in text, old
        text = text.replace(old, new)
    [(indent, _, parameters)] = SERVER_LINE.findall(text)
    servers = "".join(f"{indent}server {replica} {parameters};\n" for replica in replicas)
    text = SERVER_LINE.sub(lambda _: servers.rstrip("\n"), text)
    [port] = stack.nginx_listen_ports()
    assert text.count(f"listen {port};") == 1
    return text.replace(f"listen {port};", f"listen {listen};")


def nginx_test(config: Path, runtime: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [nginx_binary(), "-t", "-c", str(config), "-p", str(runtime)],
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_upstream_resolves_the_app_service_through_docker_dns() -> None:
    text = stack.NGINX_CONFIG.read_text()
    [(_, port, parameters)] = SERVER_LINE.findall(text)
    assert int(port) in stack.listening_ports()["app"]
    assert "max_fails=" in parameters
    assert "fail_timeout=" in parameters
    assert re.search(r"(?m)^\s*resolver 127\.0\.0\.11 ", text), "Docker's embedded DNS"
    assert re.search(r"(?m)^\s*zone market_api ", text), "`resolve` needs a shared zone"
    assert re.search(r"(?m)^\s*proxy_next_upstream error timeout;$", text)


def app_setting_seconds(name: str) -> float:
    """A replica's value of a duration setting: the Compose environment's, else the default."""
    value = stack.environment("app").get(name.upper(), Settings.model_fields[name].default)
    return float(value)


def test_a_request_caught_by_a_hung_replica_is_retried_before_the_retry_window_closes() -> None:
    """A hung replica (alive, accepting, silent) is noticed by the read timeout only. The retry
    window must outlast it, or the request caught there ends in nginx's 504 instead of being
    sent to another replica; and the app's own slowest call must fit in it."""
    http = stack.nginx_block("location /")
    read = stack.nginx_seconds(http, "proxy_read_timeout")
    retry_window = stack.nginx_seconds(
        stack.NGINX_CONFIG.read_text(), "proxy_next_upstream_timeout"
    )
    assert read < retry_window
    assert stack.nginx_seconds(http, "proxy_send_timeout") < retry_window
    assert app_setting_seconds("upstream_timeout") < read


def test_an_idle_websocket_is_closed_by_the_app_not_by_nginx() -> None:
    """The WebSocket location keeps the socket past the app's idle timeout and its sweep, so
    the app closes an idle socket with its own close code; plain HTTP keeps the short timeout."""
    ws = stack.nginx_block("location /ws/")
    app_closes_after = app_setting_seconds("ws_idle_timeout") + app_setting_seconds(
        "ws_cleanup_interval"
    )
    assert stack.nginx_seconds(ws, "proxy_read_timeout") > app_closes_after
    assert stack.nginx_seconds(ws, "proxy_send_timeout") > app_closes_after
    assert "proxy_pass http://market_api;" in ws
    http_read = stack.nginx_seconds(stack.nginx_block("location /"), "proxy_read_timeout")
    assert http_read < app_closes_after


def test_nginx_drops_an_idle_replica_connection_before_uvicorn_does() -> None:
    upstream = stack.nginx_block("upstream market_api")
    uvicorn_keep_alive = server_config(FastAPI(), make_settings()).timeout_keep_alive
    assert stack.nginx_seconds(upstream, "keepalive_timeout") < uvicorn_keep_alive
    assert re.search(r"(?m)^\s*keepalive [0-9]+;$", upstream), "a keep-alive pool to time out"


def test_nginx_accepts_the_local_rendering(tmp_path: Path) -> None:
    config = tmp_path / "nginx.conf"
    config.write_text(
        local_rendering(
            stack.NGINX_CONFIG.read_text(), ["127.0.0.1:8000", "127.0.0.1:8001"], "8080", tmp_path
        )
    )
    result = nginx_test(config, tmp_path)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_only_resolve_is_newer_than_the_local_nginx(tmp_path: Path) -> None:
    """The committed file with only the environment changed (user, paths, a resolvable host)
    fails on nginx 1.22 for the `resolve` parameter and nothing else."""
    text = stack.NGINX_CONFIG.read_text().replace("user nginx;\n", "")
    text = text.replace("/var/log/nginx/", f"{tmp_path}/").replace(
        "/var/run/nginx.pid", f"{tmp_path}/nginx.pid"
    )
    text = text.replace("server app:", "server 127.0.0.1:")
    config = tmp_path / "nginx.conf"
    config.write_text(text)
    result = nginx_test(config, tmp_path)
    version = subprocess.run(
        [nginx_binary(), "-v"], capture_output=True, text=True, timeout=10
    ).stderr
    if re.search(r"nginx/1\.(2[0-6]|1[0-9])\.", version):
        assert result.returncode != 0
        assert 'invalid parameter "resolve"' in result.stderr, result.stderr
    else:
        assert result.returncode == 0, result.stderr


@pytest.fixture
def replicas() -> Iterator[list[LiveServer]]:
    settings = make_settings(gc_freeze=False, ws_feed_interval=3600.0)
    with LiveServer(settings) as first, LiveServer(settings) as second:
        yield [first, second]


@pytest.fixture
def proxy(replicas: list[LiveServer], tmp_path: Path) -> Iterator[ManagedProcess]:
    port = free_port()
    config = tmp_path / "nginx.conf"
    config.write_text(
        local_rendering(
            stack.NGINX_CONFIG.read_text(),
            [f"127.0.0.1:{replica.port}" for replica in replicas],
            f"127.0.0.1:{port}",
            tmp_path,
        )
    )
    process = ManagedProcess(
        "nginx",
        [nginx_binary(), "-c", str(config), "-p", str(tmp_path), "-g", "daemon off;"],
        "127.0.0.1",
        port,
        log_path=tmp_path / "nginx.out",
    )
    with process:
        yield process


def served_health_checks(replica: LiveServer) -> float:
    """Health requests the replica answered, from its own /metrics."""
    text = httpx.get(f"{replica.http}/metrics", timeout=5).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "http_server_request_duration_seconds_count"
        and sample.labels.get("http_route") == HEALTH
    )


@pytest.mark.server
def test_nginx_spreads_requests_and_sockets_and_routes_around_a_gone_replica(
    replicas: list[LiveServer], proxy: ManagedProcess
) -> None:
    base = f"http://{proxy.address}"
    with httpx.Client(base_url=base, timeout=10) as http:
        for _ in range(10):
            assert http.get(HEALTH).status_code == 200
        assert all(served_health_checks(replica) > 0 for replica in replicas), "round robin"
        assert http.get("/nginx/health").text == "ok\n"

    async def websocket_through_nginx() -> None:
        async with client(f"ws://{proxy.address}/ws/dashboard") as ws:
            await subscribe(ws, "tickers.BTCUSDT")

    asyncio.run(websocket_through_nginx())

    replicas[1].stop()
    with httpx.Client(base_url=base, timeout=10) as http:
        answered = [http.get(HEALTH).status_code for _ in range(10)]
    assert answered == [200] * 10, "a refused connection is retried on the other replica"
    assert "connect() failed" in (Path(proxy.log_path or "").parent / "error.log").read_text()
