"""A real Prometheus on 127.0.0.1, configured from `alerts/prometheus.yml` (package data).

The committed configuration names the addresses of `make run`. `render_prometheus_config` writes
the same file for other addresses, intervals and rule files by replacing those few values, each
of which must appear exactly once: anything else in the file reaches the running server as
committed, so what the tests prove is what the file says.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from alerts.files import ALERTS_DIR, PROMETHEUS_CONFIG, RULES_DIR
from devstack.process import free_port, require_binary
from devstack.readiness import HttpReadyProcess

__all__ = [
    "ALERTS_DIR",
    "PROMETHEUS_CONFIG",
    "RULES_DIR",
    "prometheus_process",
    "render_prometheus_config",
    "write_prometheus_config",
]

APP_TARGET_PLACEHOLDER: Final = '"127.0.0.1:8000"'
ALERTMANAGER_PLACEHOLDER: Final = '"127.0.0.1:9093"'
RULE_FILES_PLACEHOLDER: Final = "  - rules/*.rules.yml\n"
SCRAPE_INTERVAL_PLACEHOLDER: Final = "  scrape_interval: 15s\n"
EVALUATION_INTERVAL_PLACEHOLDER: Final = "  evaluation_interval: 15s\n"
_DURATION = re.compile(r"^[1-9][0-9]*(ms|s|m|h)$")
_ADDRESS = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:[0-9]{1,5}$")


def _replace_once(text: str, old: str, new: str) -> str:
    count = text.count(old)
    if count != 1:
        raise ValueError(f"expected {old.strip()!r} exactly once in the template, found {count}")
    return text.replace(old, new)


def _address(value: str) -> str:
    if not _ADDRESS.fullmatch(value):
        raise ValueError(f"{value!r} is not host:port")
    return json.dumps(value)


def _duration(value: str) -> str:
    if not _DURATION.fullmatch(value):
        raise ValueError(f"{value!r} is not a Prometheus duration such as 1s or 15s")
    return value


def render_prometheus_config(
    *,
    app_target: str | Sequence[str],
    alertmanager: str,
    rule_files: Sequence[Path] | None = None,
    scrape_interval: str | None = None,
    evaluation_interval: str | None = None,
    source: Path = PROMETHEUS_CONFIG,
) -> str:
    """The committed configuration with the app at `app_target` and Alertmanager at
    `alertmanager` (both host:port; several app targets for several replicas, each its own
    `instance`). `rule_files` replaces the committed rule glob (default: the
    same glob, made absolute so the copy can live anywhere); the intervals replace the global
    15s ones."""
    text = source.read_text()
    targets = [app_target] if isinstance(app_target, str) else list(app_target)
    if not targets:
        raise ValueError("at least one app target is needed")
    text = _replace_once(text, APP_TARGET_PLACEHOLDER, ", ".join(map(_address, targets)))
    text = _replace_once(text, ALERTMANAGER_PLACEHOLDER, _address(alertmanager))
    files = rule_files if rule_files is not None else [source.parent / "rules" / "*.rules.yml"]
    if not files:
        raise ValueError("at least one rule file is needed")
    listed = "".join(f"  - {json.dumps(str(Path(f).resolve()))}\n" for f in files)
    text = _replace_once(text, RULE_FILES_PLACEHOLDER, listed)
    if scrape_interval is not None:
        line = f"  scrape_interval: {_duration(scrape_interval)}\n"
        text = _replace_once(text, SCRAPE_INTERVAL_PLACEHOLDER, line)
    if evaluation_interval is not None:
        line = f"  evaluation_interval: {_duration(evaluation_interval)}\n"
        text = _replace_once(text, EVALUATION_INTERVAL_PLACEHOLDER, line)
    return text


def write_prometheus_config(
    dest: Path,
    *,
    app_target: str | Sequence[str],
    alertmanager: str,
    rule_files: Sequence[Path] | None = None,
    scrape_interval: str | None = None,
    evaluation_interval: str | None = None,
    source: Path = PROMETHEUS_CONFIG,
) -> Path:
    dest.write_text(
        render_prometheus_config(
            app_target=app_target,
            alertmanager=alertmanager,
            rule_files=rule_files,
            scrape_interval=scrape_interval,
            evaluation_interval=evaluation_interval,
            source=source,
        )
    )
    return dest


def prometheus_process(
    config: Path,
    storage_dir: Path,
    port: int | None = None,
    log_path: Path | None = None,
) -> HttpReadyProcess:
    """Prometheus serving on 127.0.0.1:`port`, with exemplar storage on (latency panels link
    exemplars to traces); ready once `/-/ready` answers, that is once its rules are loaded."""
    binary = require_binary("prometheus", "prometheus")
    port = port or free_port()
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={storage_dir}",
        "--storage.tsdb.retention.time=1d",
        f"--web.listen-address=127.0.0.1:{port}",
        "--enable-feature=exemplar-storage",
    ]
    return HttpReadyProcess(
        "prometheus", argv, "127.0.0.1", port, ready_path="/-/ready", log_path=log_path
    )
