"""docker-compose.yml: pinned images, healthchecks, start order, loopback ports, real mounts.

Compose itself validates the file twice: docker-compose 1.29 (`config -q`, which also resolves
the variables) and the Compose Specification's JSON schema (what `docker compose` v2 reads).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import httpx
import pytest
import yaml
from fastapi import FastAPI, Request

from app import __version__
from app.cli import server_config
from app.upstream.simulator import ExchangeSimulator, SimulatorConditions
from devstack.exchange_sim import create_simulator_app
from tests.compose import stack
from tests.conftest import make_settings

EXACT_TAG = re.compile(r"^[a-z0-9./-]+:v?[0-9]+\.[0-9]+\.[0-9]+(-[a-z0-9.]+)?$")
APP_IMAGE = f"market-api:{__version__}"


def docker_compose(env_file: Path) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is missing: `make system-deps` installs the Debian package")
    # A variable of the caller's shell would hide a missing value in the file under test.
    env = {k: v for k, v in os.environ.items() if k not in {"GF_ADMIN_PASSWORD", "LOAD_SCENARIO"}}
    return subprocess.run(
        [binary, "-f", str(stack.COMPOSE_FILE), "--env-file", str(env_file), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=stack.ROOT,
    )


def test_docker_compose_accepts_the_file_with_the_example_env() -> None:
    result = docker_compose(stack.ENV_EXAMPLE)
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_to_start_without_the_grafana_password(tmp_path: Path) -> None:
    without = tmp_path / "env"
    lines = stack.ENV_EXAMPLE.read_text().splitlines()
    without.write_text("\n".join(x for x in lines if not x.startswith("GF_ADMIN_PASSWORD=")))
    result = docker_compose(without)
    assert result.returncode != 0
    assert "GF_ADMIN_PASSWORD is not set" in result.stderr


def test_the_compose_specification_schema_accepts_the_file() -> None:
    binary = shutil.which("check-jsonschema", path=str(Path(sys.executable).parent))
    assert binary is not None, "check-jsonschema comes with the dev extra"
    result = subprocess.run(
        [binary, "--builtin-schema", "vendor.compose-spec", str(stack.COMPOSE_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_grafana_password_has_no_default() -> None:
    password = stack.environment("grafana")["GF_SECURITY_ADMIN_PASSWORD"]
    assert password.startswith("${GF_ADMIN_PASSWORD:?"), password
    assert re.search(r"^GF_ADMIN_PASSWORD=\S+$", stack.ENV_EXAMPLE.read_text(), re.MULTILINE)
    gitignore = (stack.ROOT / ".gitignore").read_text().splitlines()
    assert ".env" in gitignore, "the real password file must never be committed"


def test_anonymous_access_is_off_or_read_only() -> None:
    env = stack.environment("grafana")
    if env.get("GF_AUTH_ANONYMOUS_ENABLED", "false").lower() == "true":
        assert env.get("GF_AUTH_ANONYMOUS_ORG_ROLE") == "Viewer"
    assert env.get("GF_USERS_ALLOW_SIGN_UP") == "false"


@pytest.mark.parametrize("name", sorted(stack.services()))
def test_every_image_has_an_exact_version_tag(name: str) -> None:
    service = stack.services()[name]
    image = service["image"]
    assert EXACT_TAG.fullmatch(image), f"{name}: {image!r} is not pinned to an exact version"
    if "build" in service:
        assert image == APP_IMAGE, "the built image is tagged with the package version"


@pytest.mark.parametrize("name", sorted(stack.services()))
def test_every_service_has_a_healthcheck(name: str) -> None:
    check = stack.services()[name].get("healthcheck", {})
    if name in stack.PROBED_BY:
        # No command can run in that image; the probe service's healthcheck is this one's.
        assert check == {"disable": True}
        probe = stack.services()[stack.PROBED_BY[name]]["healthcheck"]["test"]
        assert any(f"//{name}:" in str(arg) for arg in probe), probe
        return
    test = check.get("test")
    assert test, f"{name} has no healthcheck"
    assert test[0] in {"CMD", "CMD-SHELL"}
    assert not check.get("disable")
    for key in ("interval", "timeout", "retries"):
        assert key in check, f"{name}: healthcheck without {key}"


@pytest.mark.parametrize("name", sorted(stack.services()))
def test_every_dependency_waits_for_health(name: str) -> None:
    depends_on = stack.services()[name].get("depends_on", {})
    assert isinstance(depends_on, dict), f"{name}: depends_on needs conditions"
    for dependency, spec in depends_on.items():
        assert dependency in stack.services()
        if stack.PROBED_BY.get(dependency) == name:
            assert spec == {"condition": "service_started"}, "a probe waits for its target"
        else:
            assert spec == {"condition": "service_healthy"}, f"{name} -> {dependency}"


def test_the_app_waits_for_the_collector_through_its_probe() -> None:
    depends_on = stack.services()["app"]["depends_on"]
    assert set(depends_on) == {
        *stack.MEMCACHED_SERVICES,
        "redis",
        "exchange",
        "otel-collector-health",
    }


@pytest.mark.parametrize("name", sorted(stack.services()))
def test_ports_are_published_on_loopback_only(name: str) -> None:
    listening = stack.listening_ports()[name]
    for host, host_port, container_port in stack.published(name):
        assert host == "127.0.0.1", f"{name} publishes on {host}"
        assert container_port in listening, f"{name} does not listen on {container_port}"
        assert host_port == container_port


def test_servers_listen_on_their_documented_default_ports() -> None:
    """stack.listening_ports() relies on these servers keeping their defaults."""
    for server in ("prometheus", "alertmanager"):
        assert stack.flag(server, "--web.listen-address") is None
    assert "GF_SERVER_HTTP_PORT" not in stack.environment("grafana")
    for memcached in stack.MEMCACHED_SERVICES:
        assert "-p" not in stack.services()[memcached]["command"]
    assert "--port" not in stack.services()["redis"]["command"]


@pytest.mark.parametrize("name", sorted(stack.services()))
def test_bind_mounts_name_files_of_the_repository(name: str) -> None:
    for source, target in stack.bind_mounts(name):
        assert stack.ROOT in source.parents, f"{name} mounts {source} from outside the repo"
        if source == stack.DASHBOARDS_JSON_DIR and not source.exists():
            pytest.skip("dashboards/json/ is written by `python -m dashboards.generate`")
        assert source.exists(), f"{name} mounts {source}, which does not exist"
        assert target.startswith("/")
    for volume in stack.volume_sources(name):
        assert volume in stack.compose()["volumes"], f"{name}: undeclared volume {volume}"


def test_every_declared_volume_is_used() -> None:
    used = {v for name in stack.services() for v in stack.volume_sources(name)}
    assert used == set(stack.compose()["volumes"])


def test_the_load_generator_runs_on_demand_against_the_app_over_loopback() -> None:
    load = stack.services()["load"]
    assert load["profiles"] == ["load"]
    assert load["network_mode"] == "service:app"
    command = load["command"]
    assert command[0] == "market-load"
    assert command[command.index("--url") + 1] == "http://127.0.0.1:8000"
    assert stack.services()["app"]["environment"]["ENABLE_FAULT_INJECTION"] == "true"


def test_the_app_exports_to_the_collector_as_market_api() -> None:
    env = stack.environment("app")
    assert env["OTEL_SERVICE_NAME"] == "market-api"
    assert "service.namespace" not in env.get("OTEL_RESOURCE_ATTRIBUTES", "")
    host, port = stack.host_port(env["OTEL_EXPORTER_OTLP_ENDPOINT"])
    http = stack.collector()["receivers"]["otlp"]["protocols"]["http"]["endpoint"]
    assert (host, port) == ("otel-collector", stack.host_port(http)[1])


def test_the_app_runs_as_several_replicas_behind_nginx(tmp_path: Path) -> None:
    """Replicas publish nothing (one host port cannot go to several containers); nginx
    publishes the app's port. The count comes from APP_REPLICAS, which .env.example sets and
    Compose resolves to a number."""
    app = stack.services()["app"]
    assert "ports" not in app
    assert "container_name" not in app, "a fixed name allows one container only"
    assert app["deploy"]["replicas"] == "${APP_REPLICAS:-3}"
    assert re.search(r"^APP_REPLICAS=[1-9][0-9]*$", stack.ENV_EXAMPLE.read_text(), re.MULTILINE)
    env = tmp_path / "env"
    env.write_text(stack.ENV_EXAMPLE.read_text() + "\nAPP_REPLICAS=5\n")
    binary = shutil.which("docker-compose")
    assert binary is not None
    resolved = subprocess.run(
        [binary, "-f", str(stack.COMPOSE_FILE), "--env-file", str(env), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=stack.ROOT,
    )
    assert resolved.returncode == 0, resolved.stderr
    assert yaml.safe_load(resolved.stdout)["services"]["app"]["deploy"] == {"replicas": 5}
    [(host, host_port, container_port)] = stack.published("nginx")
    [app_port] = stack.listening_ports()["app"]
    assert (host, host_port) == ("127.0.0.1", app_port)
    assert container_port in stack.nginx_listen_ports()
    assert stack.services()["nginx"]["depends_on"] == {"app": {"condition": "service_healthy"}}


def test_nginx_runs_the_committed_config_in_an_image_that_understands_it() -> None:
    """`server ... resolve` exists in open-source nginx from 1.27.3 on."""
    image = stack.services()["nginx"]["image"]
    name, _, tag = image.partition(":")
    assert name == "nginx"
    version = tuple(int(part) for part in tag.split("-")[0].split("."))
    assert version >= (1, 27, 3), image
    assert stack.container_path(stack.NGINX_CONFIG, "nginx") == "/etc/nginx/nginx.conf"


def test_the_app_uses_both_memcached_servers_and_redis() -> None:
    env = stack.environment("app")
    servers = [stack.host_port(s) for s in env["MEMCACHED_SERVERS"].split(",")]
    assert sorted(host for host, _ in servers) == sorted(stack.MEMCACHED_SERVICES)
    for host, port in servers:
        assert port in stack.listening_ports()[host]
    redis_host, redis_port = stack.host_port(env["REDIS_URL"])
    assert redis_host == "redis"
    assert redis_port in stack.listening_ports()["redis"]
    assert stack.services()["redis"]["image"].startswith("redis:")


def test_no_replica_is_given_a_fixed_instance_id() -> None:
    """One service.instance.id shared by every replica would merge their series on the
    Collector path; each replica names itself (telemetry/instance.py)."""
    attributes = stack.environment("app").get("OTEL_RESOURCE_ATTRIBUTES", "")
    assert "service.instance.id" not in attributes
    assert "deployment.environment.name=compose" in attributes


def nginx_network() -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Network, ipaddress.IPv4Network]:
    """nginx's fixed address, the stack network's subnet and the range Docker allocates from."""
    [pool] = stack.compose()["networks"]["default"]["ipam"]["config"]
    address = stack.services()["nginx"]["networks"]["default"]["ipv4_address"]
    return (
        ipaddress.IPv4Address(address),
        ipaddress.IPv4Network(pool["subnet"]),
        ipaddress.IPv4Network(pool["ip_range"]),
    )


def test_nginx_has_a_fixed_address_no_other_container_can_be_given() -> None:
    address, subnet, dynamic = nginx_network()
    assert dynamic.subnet_of(subnet)
    assert address in subnet
    assert address not in dynamic, "Docker could give nginx's address to another container"
    assert address not in {subnet.network_address, subnet.network_address + 1}, "gateway"
    assert address != subnet.broadcast_address


def test_the_replicas_trust_forwarded_headers_from_nginx_only() -> None:
    address, _, _ = nginx_network()
    trusted = stack.environment("app")["FORWARDED_ALLOW_IPS"]
    assert trusted == str(address)
    for other in ("exchange", "prometheus", "alertmanager", "load"):
        assert "FORWARDED_ALLOW_IPS" not in stack.environment(other)


async def client_seen_by_a_replica(peer: str, forwarded_for: str) -> str:
    """The client address a replica records for a request from `peer` carrying
    X-Forwarded-For, through uvicorn configured as `market-api` configures it."""
    app = FastAPI()

    @app.get("/client")
    async def client(request: Request) -> str:
        return request.client.host if request.client else ""

    trusted = stack.environment("app")["FORWARDED_ALLOW_IPS"]
    config = server_config(app, make_settings(forwarded_allow_ips=trusted))
    config.load()
    transport = httpx.ASGITransport(app=config.loaded_app, client=(peer, 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://replica") as http:
        response = await http.get("/client", headers={"X-Forwarded-For": forwarded_for})
    assert response.status_code == 200
    host: str = response.json()
    return host


async def test_uvicorn_believes_x_forwarded_for_from_nginx_and_from_no_other_container() -> None:
    address, _, dynamic = nginx_network()
    assert await client_seen_by_a_replica(str(address), "198.51.100.7") == "198.51.100.7"
    # A client cannot hide behind an address it adds itself: nginx appends the real one.
    spoofed = "203.0.113.9, 198.51.100.7"
    assert await client_seen_by_a_replica(str(address), spoofed) == "198.51.100.7"
    other_container = str(next(dynamic.hosts()))
    assert await client_seen_by_a_replica(other_container, "198.51.100.7") == other_container


def test_every_replica_reads_one_exchange_service() -> None:
    exchange = stack.services()["exchange"]
    assert exchange["command"][0] == "market-exchange-sim"
    assert stack.flag("exchange", "--host") == "0.0.0.0", "reachable from the replicas"
    assert "ports" not in exchange, "the replicas' exchange, not the host's"
    host, port = stack.host_port(stack.environment("app")["UPSTREAM_URL"])
    assert host == "exchange"
    assert port in stack.listening_ports()["exchange"]
    assert stack.services()["app"]["depends_on"]["exchange"] == {"condition": "service_healthy"}
    # The console script is in the app image: the image installs the package, devstack included.
    pyproject = tomllib.loads((stack.ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["market-exchange-sim"] == "devstack.exchange_sim:main"
    assert "devstack" in pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"]
    assert exchange["image"] == stack.services()["app"]["image"]


async def test_the_exchange_healthcheck_asks_a_route_the_simulator_serves() -> None:
    """The probe's URL is one the simulator answers 200 on, on the port it listens on, and
    probing it never counts as a market call."""
    probe = " ".join(str(arg) for arg in stack.services()["exchange"]["healthcheck"]["test"])
    [url] = re.findall(r"urlopen\('([^']+)'", probe)
    host, port = stack.host_port(url)
    assert host == "127.0.0.1"
    assert port in stack.listening_ports()["exchange"]
    path = "/" + url.split("/", 3)[3]
    simulator = ExchangeSimulator(5, SimulatorConditions(0.0, 0.0, 0.0))
    transport = httpx.ASGITransport(app=create_simulator_app(simulator))
    async with httpx.AsyncClient(transport=transport, base_url="http://exchange") as http:
        assert (await http.get(path)).status_code == 200
    assert simulator.calls == 0
