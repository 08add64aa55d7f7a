"""A real memcached on 127.0.0.1."""

from __future__ import annotations

import os
from pathlib import Path

from devstack.process import ManagedProcess, free_port, require_binary


def memcached_process(
    port: int | None = None,
    memory_mb: int = 64,
    max_item: str = "1m",
    log_path: Path | None = None,
) -> ManagedProcess:
    binary = require_binary("memcached", "memcached")
    port = port or free_port()
    argv = [binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", str(memory_mb)]
    argv += ["-I", max_item, "-c", "1024", "-t", "2"]
    if os.geteuid() == 0:
        argv += ["-u", "root"]  # memcached refuses to run as root without it (CI runs as root)
    return ManagedProcess("memcached", argv, "127.0.0.1", port, log_path)
