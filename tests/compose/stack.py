"""The Compose stack's files, read the way Compose and each server read them.

Docker, the Collector, Tempo and Grafana cannot run here, so the tests check what can be
checked offline: that every address one file names is a service another file defines,
listening on that port; that every mount names a file of the repository; and that each
configuration says what the docs say. The listening ports come from each service's own
configuration (or the image's documented default when the configuration sets none), never from
a second copy of the numbers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any, Final

import yaml

from app.settings import Settings

ROOT: Final = Path(__file__).resolve().parents[2]
COMPOSE_FILE: Final = ROOT / "docker-compose.yml"
ENV_EXAMPLE: Final = ROOT / ".env.example"
COLLECTOR_CONFIG: Final = ROOT / "otel-collector.yaml"
TEMPO_CONFIG: Final = ROOT / "devstack" / "compose" / "tempo.yaml"
NGINX_CONFIG: Final = ROOT / "devstack" / "compose" / "nginx.conf"
PROMETHEUS_CONFIG: Final = ROOT / "alerts" / "prometheus.compose.yml"
PROVISIONING_DIR: Final = ROOT / "grafana" / "provisioning"
DATASOURCES_FILE: Final = PROVISIONING_DIR / "datasources" / "datasources.yaml"
DASHBOARD_PROVIDERS_FILE: Final = PROVISIONING_DIR / "dashboards" / "dashboards.yaml"
DASHBOARDS_JSON_DIR: Final = ROOT / "dashboards" / "json"

PROBED_BY: Final[Mapping[str, str]] = {"otel-collector": "otel-collector-health"}
"""Services whose image cannot run a healthcheck (no shell, no HTTP client), and the service
whose healthcheck probes them from outside."""

# Ports a server listens on when its configuration names none: the images' documented defaults.
PROMETHEUS_DEFAULT_PORT: Final = 9090
ALERTMANAGER_DEFAULT_PORT: Final = 9093
GRAFANA_DEFAULT_PORT: Final = 3000
MEMCACHED_DEFAULT_PORT: Final = 11211
REDIS_DEFAULT_PORT: Final = 6379
MEMCACHED_SERVICES: Final = ("memcached-1", "memcached-2")
EXCHANGE_DEFAULT_PORT: Final = 9100
"""`market-exchange-sim`'s own default (devstack/exchange_sim.py), used when `--port=` is not
given."""

_ADDRESS: Final = re.compile(
    r"^(?:[a-z]+://)?([a-z][a-z0-9-]*|[0-9]+\.[0-9]+\.[0-9]+\.[0-9]+):([0-9]{1,5})(?:/.*)?$"
)


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


@cache
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(COMPOSE_FILE)
    return loaded


def services() -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose()["services"]
    return found


def collector() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(COLLECTOR_CONFIG)
    return loaded


def tempo() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(TEMPO_CONFIG)
    return loaded


def prometheus() -> dict[str, Any]:
    loaded: dict[str, Any] = load_yaml(PROMETHEUS_CONFIG)
    return loaded


def environment(service: str) -> dict[str, str]:
    env = services()[service].get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def host_port(address: str) -> tuple[str, int]:
    """`http://tempo:3200/x`, `tempo:4317` or `0.0.0.0:4317` -> (host, port)."""
    match = _ADDRESS.fullmatch(address)
    if match is None:
        raise ValueError(f"{address!r} is not host:port or a URL with a port")
    return match.group(1), int(match.group(2))


def bind_mounts(service: str) -> list[tuple[Path, str]]:
    """(source in the repository, target in the container) of each bind mount."""
    mounts: list[tuple[Path, str]] = []
    for volume in services()[service].get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith("."):
            mounts.append(((ROOT / source).resolve(), target))
    return mounts


def volume_sources(service: str) -> list[str]:
    names = []
    for volume in services()[service].get("volumes", []):
        source = str(volume).split(":")[0]
        if not source.startswith((".", "/")):
            names.append(source)
    return names


def container_path(repo_path: Path, service: str) -> str:
    """Where `repo_path` appears inside `service`'s container, through its bind mounts."""
    repo_path = repo_path.resolve()
    for source, target in bind_mounts(service):
        if repo_path == source:
            return target
        if source in repo_path.parents:
            return f"{target}/{repo_path.relative_to(source).as_posix()}"
    raise LookupError(f"{repo_path} is not mounted into {service}")


def flag(service: str, name: str) -> str | None:
    for arg in services()[service].get("command", []):
        if str(arg).startswith(f"{name}="):
            return str(arg).split("=", 1)[1]
    return None


def nginx_listen_ports() -> set[int]:
    """The ports of nginx.conf's `listen` directives."""
    found = re.findall(r"(?m)^\s*listen\s+(?:[0-9.]+:)?([0-9]+)\b[^;]*;", NGINX_CONFIG.read_text())
    return {int(port) for port in found}


def nginx_block(header: str) -> str:
    """The body of nginx.conf's block opened by `header {` (e.g. `location /ws/`, `upstream
    market_api`), up to its closing brace; the blocks read here hold no nested braces."""
    text = NGINX_CONFIG.read_text()
    match = re.search(rf"(?m)^\s*{re.escape(header)}\s*\{{([^{{}}]*)\}}", text)
    if match is None:
        raise LookupError(f"no `{header} {{` block in {NGINX_CONFIG}")
    return match.group(1)


def nginx_seconds(block: str, directive: str) -> int:
    """The value, in seconds, of `directive Ns;` in `block` (nginx.conf writes them so)."""
    found = re.findall(rf"(?m)^\s*{re.escape(directive)}\s+([0-9]+)s;", block)
    if len(found) != 1:
        raise LookupError(f"{directive}: {len(found)} occurrences in seconds, expected one")
    return int(found[0])


def listening_ports() -> dict[str, set[int]]:
    """Each service's ports, read from its configuration."""
    app_port = int(Settings.model_fields["app_port"].default)
    otel = collector()
    collector_ports = {
        host_port(otel["receivers"]["otlp"]["protocols"][p]["endpoint"])[1]
        for p in ("grpc", "http")
    }
    collector_ports.add(host_port(otel["extensions"]["health_check"]["endpoint"])[1])
    collector_ports.add(host_port(otel["exporters"]["prometheus"]["endpoint"])[1])
    tempo_config = tempo()
    tempo_ports = {int(tempo_config["server"]["http_listen_port"])}
    for protocol in tempo_config["distributor"]["receivers"]["otlp"]["protocols"].values():
        tempo_ports.add(host_port(protocol["endpoint"])[1])
    return {
        "app": {app_port},
        "load": {app_port},  # shares one replica's network namespace
        "nginx": nginx_listen_ports(),
        **{name: {MEMCACHED_DEFAULT_PORT} for name in MEMCACHED_SERVICES},
        "redis": {REDIS_DEFAULT_PORT},
        "exchange": {int(flag("exchange", "--port") or EXCHANGE_DEFAULT_PORT)},
        "otel-collector": collector_ports,
        "otel-collector-health": set(),
        "tempo": tempo_ports,
        "prometheus": {PROMETHEUS_DEFAULT_PORT},
        "alertmanager": {ALERTMANAGER_DEFAULT_PORT},
        "grafana": {GRAFANA_DEFAULT_PORT},
    }


def published(service: str) -> Iterator[tuple[str, int, int]]:
    """(host ip, host port, container port) of each published port."""
    for entry in services()[service].get("ports", []):
        parts = str(entry).split(":")
        if len(parts) != 3:
            raise ValueError(f"{service}: {entry!r} does not name the host address")
        yield parts[0], int(parts[1]), int(parts[2])
