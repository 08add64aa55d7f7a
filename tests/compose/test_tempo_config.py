"""devstack/compose/tempo.yaml: receives from the Collector, stores on its volume, and
remote-writes span metrics to the Prometheus of the stack."""

from __future__ import annotations

from pathlib import PurePosixPath

from tests.compose import stack

CONFIG = stack.tempo()


def test_the_compose_file_runs_tempo_with_this_config() -> None:
    target = stack.container_path(stack.TEMPO_CONFIG, "tempo")
    assert stack.services()["tempo"]["command"] == [f"-config.file={target}"]
    probe = stack.services()["tempo"]["healthcheck"]["test"]
    assert f"-config.file={target}" in probe
    assert "-health" in probe
    [url] = [arg.split("=", 1)[1] for arg in probe if arg.startswith("-health.url=")]
    assert url.endswith("/ready")
    assert stack.host_port(url) == ("127.0.0.1", CONFIG["server"]["http_listen_port"])


def test_the_otlp_receiver_listens_for_other_containers() -> None:
    protocols = CONFIG["distributor"]["receivers"]["otlp"]["protocols"]
    assert set(protocols) == {"grpc"}, "the Collector exports OTLP/gRPC only"
    assert stack.host_port(protocols["grpc"]["endpoint"])[0] == "0.0.0.0"


def test_the_metrics_generator_writes_to_prometheus_with_exemplars() -> None:
    assert CONFIG["overrides"]["defaults"]["metrics_generator"]["processors"] == [
        "service-graphs",
        "span-metrics",
    ]
    [remote_write] = CONFIG["metrics_generator"]["storage"]["remote_write"]
    host, port = stack.host_port(remote_write["url"])
    assert host == "prometheus"
    assert port in stack.listening_ports()["prometheus"]
    assert remote_write["url"].endswith("/api/v1/write")
    assert remote_write["send_exemplars"] is True
    assert "--web.enable-remote-write-receiver" in stack.services()["prometheus"]["command"]


def test_every_path_is_on_the_tempo_volume() -> None:
    [volume] = stack.services()["tempo"]["volumes"][1:]
    name, mount = volume.split(":")
    assert name in stack.compose()["volumes"]
    storage = CONFIG["storage"]["trace"]
    paths = [
        storage["wal"]["path"],
        storage["local"]["path"],
        CONFIG["metrics_generator"]["storage"]["path"],
    ]
    for path in paths:
        assert PurePosixPath(mount) in PurePosixPath(path).parents, path


def test_tempo_3_has_no_2x_blocks() -> None:
    """Tempo 3.0 removed the ingester, compactor and their clients from the configuration."""
    image = stack.services()["tempo"]["image"]
    assert image.startswith("grafana/tempo:3.")
    assert not {"ingester", "ingester_client", "compactor", "metrics_generator_client"} & set(
        CONFIG
    )


def test_grafana_finds_tempo_on_its_http_port() -> None:
    [datasource] = [
        d for d in stack.load_yaml(stack.DATASOURCES_FILE)["datasources"] if d["type"] == "tempo"
    ]
    host, port = stack.host_port(datasource["url"])
    assert host == "tempo"
    assert port == CONFIG["server"]["http_listen_port"]
