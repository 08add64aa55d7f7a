"""devstack/nginx.py: the rendered configuration, checked by the real `nginx -t`, and a real
nginx in front of a real `market-api` process for what the app believes of X-Forwarded-*."""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.settings import Settings
from devstack.nginx import (
    HEALTH_PATH,
    ProxyLimits,
    check_nginx_config,
    nginx_process,
    render_nginx_config,
    write_nginx_config,
)
from devstack.polling import poll_until
from devstack.process import free_port
from devstack.readiness import HttpReadyProcess

PROXY = "127.0.0.2"
CLIENT = "127.0.0.5"
"""Loopback addresses other than 127.0.0.1 (Linux routes all of 127.0.0.0/8 to `lo`): nginx
connects to the replica from PROXY, the test's client connects from CLIENT, so the address the
replica records says who it believed."""


@pytest.mark.parametrize("max_head", [2560, 4096, 8192, 16384, 65536, 1024 * 1024])
def test_forwarded_heads_fit_the_apps_limit(max_head: int) -> None:
    limits = ProxyLimits.for_app(Settings(http_max_header_bytes=max_head))
    assert limits.max_forwarded_head_bytes <= max_head
    assert limits.header_buffers >= 1
    assert limits.header_buffer_bytes % 1024 == 0


def test_limits_follow_the_apps_settings() -> None:
    settings = Settings(alert_notification_max_bytes=100_000, ws_idle_timeout=60)
    limits = ProxyLimits.for_app(settings)
    assert limits.max_body_bytes == 100_000
    assert limits.ws_read_timeout_seconds > 60 + settings.ws_cleanup_interval
    assert limits.header_timeout_seconds == settings.http_header_timeout
    with pytest.raises(ValueError, match="too small"):
        ProxyLimits.for_app(Settings(http_max_header_bytes=2048))


def test_config_names_every_replica_and_the_policy(tmp_path: Path) -> None:
    text = render_nginx_config(
        prefix=tmp_path,
        listen="127.0.0.1:8080",
        replicas=["127.0.0.1:9001", "127.0.0.1:9002"],
        limits=ProxyLimits.for_app(Settings()),
        bind_address=PROXY,
    )
    servers = re.findall(r"^\s*server (\S+) max_fails=\d+ fail_timeout=\d+s;$", text, re.M)
    assert servers == ["127.0.0.1:9001", "127.0.0.1:9002"]
    for line in (
        "proxy_http_version 1.1;",
        "proxy_set_header Connection $connection_upgrade;",
        "proxy_set_header X-Forwarded-For $remote_addr;",
        "proxy_set_header X-Forwarded-Proto $scheme;",
        "proxy_set_header X-Forwarded-Host $http_host;",
        f"proxy_bind {PROXY};",
        "proxy_next_upstream error timeout;",
        "client_max_body_size 256k;",
        "large_client_header_buffers 2 4k;",
        "zone market_api 64k;",
    ):
        assert line in text
    assert str(tmp_path.resolve()) in text
    assert "/var/" not in text, "every file lives under the prefix"
    assert "/etc/" not in text
    limits = ProxyLimits.for_app(Settings())
    with pytest.raises(ValueError, match="at least one"):
        render_nginx_config(prefix=tmp_path, listen="127.0.0.1:1", replicas=[], limits=limits)


@pytest.mark.nginx
def test_nginx_accepts_the_rendered_config(tmp_path: Path) -> None:
    config = write_nginx_config(
        tmp_path,
        listen=f"127.0.0.1:{free_port()}",
        replicas=[f"127.0.0.1:{free_port()}" for _ in range(3)],
        limits=ProxyLimits.for_app(Settings()),
        bind_address=PROXY,
        worker_processes=2,
    )
    assert "test is successful" in check_nginx_config(tmp_path, config)
    config.write_text(config.read_text().replace("proxy_http_version 1.1;", "proxy_http_vers 1;"))
    with pytest.raises(ValueError, match="unknown directive"):
        check_nginx_config(tmp_path, config)


# ---------------------------------------------------------------------- a real proxy, a real app
class Proxied:
    def __init__(self, root: Path, replica: HttpReadyProcess, nginx: HttpReadyProcess) -> None:
        self.root = root
        self.replica = replica
        self.nginx = nginx

    def replica_saw(self, marker: str, timeout: float = 10.0) -> str:
        """The client address of the replica's access-log line for the request carrying
        `marker` in its query string."""
        found: list[str] = []

        def logged() -> bool:
            assert self.replica.log_path is not None
            for line in self.replica.log_path.read_text(errors="replace").splitlines():
                if marker in line:
                    found.append(line.split()[1])
                    return True
            return False

        poll_until(logged, timeout=timeout, interval=0.05, waiting_for=lambda: marker)
        return found[0]


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[Proxied]:
    port = free_port()
    replica = HttpReadyProcess(
        "replica",
        [sys.executable, "-c", "from app.cli import main; main()"],
        "127.0.0.1",
        port,
        ready_path="/api/monitoring/performance/health",
        log_path=tmp_path / "replica.log",
        env={
            "APP_PORT": str(port),
            "LOG_LEVEL": "info",  # uvicorn's access log: the client address the app believed
            "FORWARDED_ALLOW_IPS": PROXY,
            "UPSTREAM_LATENCY_MS": "1",
            "UPSTREAM_JITTER_MS": "0",
        },
    )
    nginx_port = free_port()
    prefix = tmp_path / "nginx"
    config = write_nginx_config(
        prefix,
        listen=f"127.0.0.1:{nginx_port}",
        replicas=[f"127.0.0.1:{port}"],
        limits=ProxyLimits.for_app(Settings()),
        bind_address=PROXY,
    )
    with replica, nginx_process(prefix, config, nginx_port) as nginx:
        yield Proxied(tmp_path, replica, nginx)


def client_from(address: str, base_url: str) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(transport=transport, base_url=base_url, timeout=10)


SPOOF = {"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}


@pytest.mark.nginx
@pytest.mark.server
def test_through_nginx_the_app_sees_the_real_client(proxied: Proxied) -> None:
    with client_from(CLIENT, proxied.nginx.url) as client:
        assert client.get(HEALTH_PATH).text == "ok\n"
        # A client's own X-Forwarded-* are replaced by nginx's: the address it connected from,
        # the scheme it spoke. The slash redirect is built from the request's scheme and host.
        answer = client.get("/api/market/movers/?via=nginx", headers=SPOOF)
        assert answer.status_code == 307
        assert answer.headers["location"].startswith(f"http://127.0.0.1:{proxied.nginx.port}/")
    assert proxied.replica_saw("via=nginx") == f"{CLIENT}:0"


@pytest.mark.nginx
@pytest.mark.server
def test_a_direct_client_is_not_believed(proxied: Proxied) -> None:
    with client_from("127.0.0.1", proxied.replica.url) as client:
        answer = client.get("/api/market/movers/?via=direct", headers=SPOOF)
        assert answer.headers["location"].startswith("http://")
    seen = proxied.replica_saw("via=direct")
    assert seen.startswith("127.0.0.1:"), seen
    assert seen != "127.0.0.1:0", "the connection's own port, not a forwarded address"
    # The proxy's own address is believed: what nginx sends is what the app records.
    with client_from(PROXY, proxied.replica.url) as proxy:
        answer = proxy.get("/api/market/movers/?via=proxy", headers=SPOOF)
        assert answer.headers["location"].startswith("https://")
    assert proxied.replica_saw("via=proxy") == "203.0.113.9:0"


@pytest.mark.nginx
@pytest.mark.server
def test_nginx_refuses_what_the_app_would(proxied: Proxied) -> None:
    with client_from(CLIENT, proxied.nginx.url) as client:
        big_body = b"x" * (Settings().alert_notification_max_bytes + 1)
        answer = client.post("/api/alerts/webhook?via=big-body", content=big_body)
        assert answer.status_code == 413
        long_header = {"X-Padding": "p" * 5000}  # over one 4k header buffer
        answer = client.get("/api/market/movers?via=long-header", headers=long_header)
        assert answer.status_code in (400, 431, 494)
        assert client.get("/api/market/movers?via=fine").status_code == 200
    proxied.replica_saw("via=fine")
    time.sleep(0.2)
    assert proxied.replica.log_path is not None
    log = proxied.replica.log_path.read_text()
    assert "via=big-body" not in log
    assert "via=long-header" not in log
