"""A real nginx (Debian's 1.22) in front of N app replicas, run as the current user.

`render_nginx_config` writes the whole configuration; `nginx_process` runs it with its own prefix,
pid file, logs and temporary directories under one directory, so it needs no root, no port 80 and
nothing from /etc/nginx. The choices, and why:

- HTTP and WebSocket through one `location /`: `proxy_http_version 1.1`, `Upgrade` passed on and
  `Connection` mapped from it (`upgrade` when the client asked, empty otherwise, so plain requests
  keep the keep-alive connection to the replica). `location /ws/` differs only in its timeouts.
- Health: open-source nginx checks passively. A connect that is refused or times out, or a read
  that times out, counts as a failure (`proxy_next_upstream error timeout`); `MAX_FAILS` failures
  within `FAIL_TIMEOUT_SECONDS` take the replica out for that long, then one request tries it
  again. The peers' state lives in a shared `zone`, so every worker agrees. A killed replica
  refuses connections at once (loopback), so it is out after its first refused connects and costs
  the clients nothing: an idempotent request that failed is passed to the next replica
  (`proxy_next_upstream_tries`, `proxy_next_upstream_timeout` bound the retries). A POST is
  retried only when it never reached the replica (connect refused), never after it was sent.
  HTTP statuses are never retried: the app's 502/503 come from the shared exchange, every replica
  would answer the same, and retries would multiply the load on the exchange.
  A hung replica (alive, accepting, silent) is the expensive case: every request sent to it
  waits HTTP_READ_TIMEOUT_SECONDS before its retry, until MAX_FAILS of them have timed out, and
  one request per FAIL_TIMEOUT_SECONDS waits as long again while it stays hung. Active health
  checks (nginx Plus, or a proxy that probes) would take it out sooner.
- Keep-alive to the replicas, closed by nginx before uvicorn's own 5 s keep-alive timeout, so
  nginx never sends a request on a connection the replica is closing at that moment.
- `X-Forwarded-For` is the connecting client's address, replacing whatever the client sent: nginx
  is the edge here, and the app trusts the header only from nginx (`FORWARDED_ALLOW_IPS`). Behind
  another proxy, that proxy's address would go into `set_real_ip_from` (realip module) instead.
- Request heads and bodies bounded like the app's own limits (`ProxyLimits.for_app`), so nginx
  never forwards a head or a body the app would refuse and never buffers more than that.
"""

from __future__ import annotations

import grp
import os
import pwd
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from app.settings import Settings
from devstack.process import require_binary
from devstack.readiness import HttpReadyProcess

HEALTH_PATH: Final = "/nginx/health"
"""Answered by nginx itself, without a replica: readiness of nginx alone."""

MAX_FAILS: Final = 2
"""Failed attempts within FAIL_TIMEOUT_SECONDS that take a replica out: one stray timeout does
not, a dead replica is out after two refused connects (microseconds apart under load)."""
FAIL_TIMEOUT_SECONDS: Final = 5
"""How long a failed replica stays out before one request tries it again."""
NEXT_UPSTREAM_TRIES: Final = 2
"""At most one retry per request: a retry storm can at worst double the load, never multiply it
by the number of replicas."""
NEXT_UPSTREAM_TIMEOUT_SECONDS: Final = 15
"""Longer than HTTP_READ_TIMEOUT_SECONDS, so that a request that timed out on a hung replica
still gets its one retry elsewhere (a client waits at most about read timeout x 2)."""
CONNECT_TIMEOUT_SECONDS: Final = 1
"""A loopback or LAN connect takes microseconds; a replica that accepts nothing in a second is
treated as down rather than making the client wait."""
HTTP_READ_TIMEOUT_SECONDS: Final = 10
"""Longest a replica may stay silent on an HTTP request before nginx gives up on it (and counts a
failure): the app's own slowest path is bounded by UPSTREAM_TIMEOUT (2 s) plus the cache's
deadlines. A hung replica (alive, accepting, never answering) costs each request sent to it this
long, including the one probe per FAIL_TIMEOUT_SECONDS: passive checks cannot do better."""
UPSTREAM_KEEPALIVE_CONNECTIONS: Final = 32
UPSTREAM_KEEPALIVE_TIMEOUT_SECONDS: Final = 4
"""Below uvicorn's keep-alive timeout (5 s): nginx drops an idle connection before the replica
does, never reusing one the replica is closing."""
HEAD_HEADROOM_BYTES: Final = 512
"""What nginx adds to a request head besides X-Forwarded-Host: X-Forwarded-For/-Proto,
Connection, Upgrade."""


@dataclass(frozen=True, slots=True)
class ProxyLimits:
    """What nginx accepts from a client, derived from what the app accepts."""

    max_body_bytes: int
    """client_max_body_size: the largest body any route reads (the alert webhook's)."""
    header_buffer_bytes: int
    header_buffers: int
    """large_client_header_buffers: a request line or header line fits in one buffer, the whole
    head in all of them."""
    header_timeout_seconds: float
    ws_read_timeout_seconds: float
    """How long a WebSocket may stay silent on the replica's side: past the app's own idle
    timeout and its sweep, so the app closes an idle socket itself, with its close code."""

    @classmethod
    def for_app(cls, settings: Settings) -> ProxyLimits:
        """Heads nginx forwards stay within HTTP_MAX_HEADER_BYTES even after nginx copies Host
        into X-Forwarded-Host and adds its own headers: (buffers + 1) x size + headroom."""
        max_head = settings.http_max_header_bytes
        for size in (8192, 4096, 2048, 1024):
            count = (max_head - HEAD_HEADROOM_BYTES) // size - 1
            if count >= 2:
                break
        if count < 1:
            raise ValueError(f"HTTP_MAX_HEADER_BYTES={max_head} is too small to proxy")
        return cls(
            max_body_bytes=settings.alert_notification_max_bytes,
            header_buffer_bytes=size,
            header_buffers=count,
            header_timeout_seconds=settings.http_header_timeout,
            ws_read_timeout_seconds=settings.ws_idle_timeout + settings.ws_cleanup_interval + 30,
        )

    @property
    def max_forwarded_head_bytes(self) -> int:
        return (self.header_buffers + 1) * self.header_buffer_bytes + HEAD_HEADROOM_BYTES


def _user_line() -> str:
    """A master running as root switches its workers to `nobody` unless told otherwise; they
    could not write the temporary directories then. As anyone else the directive is ignored."""
    if os.geteuid() != 0:
        return ""
    user = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    return f"user {user} {group};\n"


def render_nginx_config(
    *,
    prefix: Path,
    listen: str,
    replicas: Sequence[str],
    limits: ProxyLimits,
    bind_address: str | None = None,
    worker_processes: int = 1,
) -> str:
    """The configuration of an nginx whose every file lives under `prefix`, listening on
    `listen` (host:port) and balancing over `replicas` (host:port each). `bind_address` is the
    source address nginx connects to the replicas from (`proxy_bind`): the one address they
    trust with X-Forwarded-*."""
    if not replicas:
        raise ValueError("at least one replica")
    prefix = prefix.resolve()
    servers = "".join(
        f"        server {replica} max_fails={MAX_FAILS} fail_timeout={FAIL_TIMEOUT_SECONDS}s;\n"
        for replica in replicas
    )
    bind = f"        proxy_bind {bind_address};\n" if bind_address else ""
    temp = "".join(
        f"    {kind}_temp_path {prefix / 'temp' / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    body_kib = -(-limits.max_body_bytes // 1024)
    header_timeout = max(1, round(limits.header_timeout_seconds))
    ws_timeout = max(1, round(limits.ws_read_timeout_seconds))
    return f"""# Rendered by devstack/nginx.py: see its docstring for every choice.
{_user_line()}worker_processes {worker_processes};
pid {prefix / "nginx.pid"};
error_log {prefix / "logs" / "error.log"} notice;

events {{
    worker_connections 4096;
}}

http {{
{temp}    log_format upstreams '$msec $remote_addr "$request" $status '
                         'upstream=$upstream_addr upstream_status=$upstream_status '
                         'request_time=$request_time connect_time=$upstream_connect_time';
    access_log {prefix / "logs" / "access.log"} upstreams;

    # Client side: bounded like the app, so nothing reaches a replica that it would refuse.
    client_max_body_size {body_kib}k;
    client_body_buffer_size {body_kib}k;
    client_header_buffer_size 1k;
    large_client_header_buffers {limits.header_buffers} {limits.header_buffer_bytes // 1024}k;
    client_header_timeout {header_timeout}s;
    client_body_timeout {header_timeout}s;
    keepalive_timeout 60s;
    server_tokens off;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ""      "";
    }}

    upstream market_api {{
        zone market_api 64k;
{servers}        keepalive {UPSTREAM_KEEPALIVE_CONNECTIONS};
        keepalive_timeout {UPSTREAM_KEEPALIVE_TIMEOUT_SECONDS}s;
        keepalive_requests 10000;
    }}

    server {{
        listen {listen};

        proxy_http_version 1.1;
        proxy_set_header Host $http_host;
        proxy_set_header Upgrade $http_upgrade;
        proxy_set_header Connection $connection_upgrade;
        proxy_set_header X-Forwarded-For $remote_addr;
        proxy_set_header X-Forwarded-Proto $scheme;
        proxy_set_header X-Forwarded-Host $http_host;
{bind}        proxy_connect_timeout {CONNECT_TIMEOUT_SECONDS}s;
        proxy_next_upstream error timeout;
        proxy_next_upstream_tries {NEXT_UPSTREAM_TRIES};
        proxy_next_upstream_timeout {NEXT_UPSTREAM_TIMEOUT_SECONDS}s;

        location / {{
            proxy_pass http://market_api;
            proxy_read_timeout {HTTP_READ_TIMEOUT_SECONDS}s;
            proxy_send_timeout {HTTP_READ_TIMEOUT_SECONDS}s;
        }}

        location /ws/ {{
            proxy_pass http://market_api;
            proxy_read_timeout {ws_timeout}s;
            proxy_send_timeout {ws_timeout}s;
        }}

        location = {HEALTH_PATH} {{
            access_log off;
            default_type text/plain;
            return 200 "ok\\n";
        }}
    }}
}}
"""


def write_nginx_config(prefix: Path, **options: object) -> Path:
    """Render into `prefix`/nginx.conf and create the directories nginx writes to."""
    for sub in ("logs", "temp"):
        (prefix / sub).mkdir(parents=True, exist_ok=True)
    config = prefix / "nginx.conf"
    config.write_text(render_nginx_config(prefix=prefix, **options))  # type: ignore[arg-type]
    return config


def _argv(prefix: Path, config: Path) -> list[str]:
    binary = require_binary("nginx", "nginx")
    # -e: the error log of start-up itself, before the configuration is read (otherwise
    # /var/log/nginx/error.log, which only root may write).
    return [binary, "-p", str(prefix), "-c", str(config), "-e", str(prefix / "logs" / "error.log")]


def check_nginx_config(prefix: Path, config: Path) -> str:
    """`nginx -t` on the file; returns its report, raises ValueError with it when invalid."""
    result = subprocess.run(
        [*_argv(prefix, config), "-t"], capture_output=True, text=True, timeout=30, check=False
    )
    report = result.stdout + result.stderr
    if result.returncode != 0:
        raise ValueError(f"nginx -t refused {config}: {report}")
    return report


def nginx_process(prefix: Path, config: Path, port: int) -> HttpReadyProcess:
    """nginx in the foreground (`daemon off`) so that it is our child and SIGTERM stops it;
    ready once it answers HEALTH_PATH itself on `port`, the one its configuration listens on."""
    argv = [*_argv(prefix, config), "-g", "daemon off;"]
    return HttpReadyProcess(
        "nginx",
        argv,
        "127.0.0.1",
        port,
        ready_path=HEALTH_PATH,
        log_path=prefix / "logs" / "stderr.log",
    )


@dataclass(frozen=True, slots=True)
class AccessRecord:
    """One line of the `upstreams` access log: when the request ended, its status, and every
    replica nginx tried for it, in order (a retried request names two)."""

    time: float
    status: int
    request: str
    upstreams: tuple[str, ...] = field(default=())


def read_access_log(path: Path) -> list[AccessRecord]:
    """The access log written by a configuration from `render_nginx_config`."""
    records = []
    for line in path.read_text(errors="replace").splitlines():
        stamp, _, rest = line.partition(" ")
        _, _, rest = rest.partition(' "')
        request, _, rest = rest.partition('" ')
        status, _, rest = rest.partition(" ")
        records.append(AccessRecord(float(stamp), int(status), request, _upstreams(rest)))
    return records


def _upstreams(rest: str) -> tuple[str, ...]:
    start = rest.find("upstream=")
    end = rest.find(" upstream_status=")
    if start < 0 or end < 0:
        return ()
    listed = rest[start + len("upstream=") : end]
    # $upstream_addr separates the tries of one request with ", ".
    return tuple(item.strip() for item in listed.split(",") if item.strip() not in ("", "-"))
