"""`market-api` as a real child process on a free port, and what the kernel says about it.

Attacks on the HTTP layer have to meet the server exactly as it runs in production (app/cli.py,
uvicorn, its protocol classes), and their cost is read from outside: the process's resident
memory and the TCP connections it holds, as `ps` and `ss -tn` would show them.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from devstack.process import ManagedProcess, free_port


class MarketProcess:
    def __init__(self, proc: ManagedProcess) -> None:
        self.managed = proc
        assert proc.proc is not None
        self.ps = psutil.Process(proc.proc.pid)

    @property
    def port(self) -> int:
        return self.managed.port

    @property
    def url(self) -> str:
        return f"http://{self.managed.address}"

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def established(self) -> int:
        """TCP connections the server holds open on its port (ESTABLISHED or half-closed)."""
        open_states = {psutil.CONN_ESTABLISHED, psutil.CONN_CLOSE_WAIT}
        return sum(
            1
            for c in self.ps.net_connections(kind="tcp")
            if c.laddr and c.laddr.port == self.port and c.status in open_states
        )

    def log(self) -> str:
        path = self.managed.log_path
        return path.read_text(errors="replace") if path is not None and path.exists() else ""


@contextmanager
def market_process(env: dict[str, str] | None = None) -> Iterator[MarketProcess]:
    """Run `market-api` (app.cli.main) with `env` on top of a quiet, fast simulator."""
    port = free_port()
    settings = {
        "APP_HOST": "127.0.0.1",
        "APP_PORT": str(port),
        "LOG_LEVEL": "warning",
        "UPSTREAM_LATENCY_MS": "1",
        "UPSTREAM_JITTER_MS": "0",
        "UPSTREAM_SEED": "7",
        "OTEL_METRIC_EXPORT_INTERVAL": "600000",
        **(env or {}),
    }
    with tempfile.TemporaryDirectory() as tmp:
        proc = ManagedProcess(
            "market-api",
            [sys.executable, "-c", "from app.cli import main; main()"],
            "127.0.0.1",
            port,
            log_path=Path(tmp) / "market-api.log",
            env=settings,
        )
        with proc:
            yield MarketProcess(proc)
