"""Wait for a server that opens its port before it can answer (Prometheus, Alertmanager)."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from devstack.polling import poll_until
from devstack.process import ManagedProcess


def wait_http_ready(url: str, timeout: float = 15.0) -> None:
    """Poll `url` until it answers 200."""
    last = "no answer"

    def ready() -> bool:
        nonlocal last
        try:
            with urllib.request.urlopen(url, timeout=1.0) as response:
                if response.status == 200:
                    return True
                last = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = str(exc)
        return False

    poll_until(
        ready,
        timeout=timeout,
        interval=0.05,
        waiting_for=lambda: f"{url} not ready after {timeout}s: {last}",
    )


class HttpReadyProcess(ManagedProcess):
    """A managed server that counts as started once `ready_path` answers 200, not merely when
    its port accepts connections (both servers listen before their configuration is loaded)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        host: str,
        port: int,
        *,
        ready_path: str,
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        super().__init__(name, argv, host, port, log_path, env)
        self.ready_path = ready_path

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def start(self, ready_timeout: float = 15.0) -> HttpReadyProcess:
        deadline = time.monotonic() + ready_timeout
        super().start(ready_timeout)
        try:
            wait_http_ready(self.url + self.ready_path, max(deadline - time.monotonic(), 1.0))
        except BaseException:
            self.stop()
            raise
        return self

    def __enter__(self) -> HttpReadyProcess:
        return self.start() if not self.running else self
