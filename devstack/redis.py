"""A real redis-server on 127.0.0.1, with nothing persisted: a restart starts empty."""

from __future__ import annotations

import tempfile
from pathlib import Path

from devstack.process import ManagedProcess, free_port, require_binary


def redis_process(port: int | None = None, log_path: Path | None = None) -> ManagedProcess:
    binary = require_binary("redis-server", "redis-server")
    port = port or free_port()
    argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "", "--appendonly"]
    argv += ["no", "--protected-mode", "yes", "--daemonize", "no", "--maxclients", "4096"]
    # No dump.rdb next to whoever started it: the working directory is a private temporary one.
    argv += ["--dir", tempfile.gettempdir()]
    return ManagedProcess("redis-server", argv, "127.0.0.1", port, log_path)
