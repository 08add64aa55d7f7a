"""A real Alertmanager on 127.0.0.1, configured from `alerts/alertmanager.yml` (package data).

The committed configuration posts to the webhook of `make run`; `render_alertmanager_config`
writes it for another webhook URL and changes nothing else, so the routes, grouping and
inhibition a test exercises are exactly the committed ones.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Final

from alerts.files import ALERTMANAGER_CONFIG, ALERTS_DIR
from devstack.process import free_port, require_binary
from devstack.readiness import HttpReadyProcess

__all__ = [
    "ALERTMANAGER_CONFIG",
    "ALERTS_DIR",
    "WEBHOOK_URL_PLACEHOLDER",
    "alertmanager_process",
    "render_alertmanager_config",
    "write_alertmanager_config",
]

WEBHOOK_URL_PLACEHOLDER: Final = "http://127.0.0.1:8000/api/alerts/webhook"
_URL = re.compile(r"^https?://[A-Za-z0-9.\-\[\]:]+(/[A-Za-z0-9._~/\-]*)?$")


def render_alertmanager_config(webhook_url: str, source: Path = ALERTMANAGER_CONFIG) -> str:
    """The committed configuration with every receiver posting to `webhook_url`."""
    if not _URL.fullmatch(webhook_url):
        raise ValueError(f"{webhook_url!r} is not a plain http(s) URL")
    text = source.read_text()
    if WEBHOOK_URL_PLACEHOLDER not in text:
        raise ValueError(f"{source} does not mention {WEBHOOK_URL_PLACEHOLDER}")
    return text.replace(WEBHOOK_URL_PLACEHOLDER, webhook_url)


def write_alertmanager_config(
    dest: Path, webhook_url: str, source: Path = ALERTMANAGER_CONFIG
) -> Path:
    dest.write_text(render_alertmanager_config(webhook_url, source))
    return dest


def alertmanager_process(
    config: Path,
    storage_dir: Path,
    port: int | None = None,
    log_path: Path | None = None,
) -> HttpReadyProcess:
    """Alertmanager serving on 127.0.0.1:`port`, clustering off (a single local instance must not
    listen on 0.0.0.0:9094 nor wait for peers); ready once `/-/ready` answers."""
    binary = require_binary("prometheus-alertmanager", "prometheus-alertmanager")
    port = port or free_port()
    argv = [
        binary,
        f"--config.file={config}",
        f"--storage.path={storage_dir}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--cluster.listen-address=",
    ]
    return HttpReadyProcess(
        "alertmanager", argv, "127.0.0.1", port, ready_path="/-/ready", log_path=log_path
    )
