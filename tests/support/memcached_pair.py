"""Two real memcached nodes on free loopback ports, and a way to read each one directly."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from pymemcache.client.base import Client

from devstack.memcached import memcached_process
from devstack.process import ManagedProcess


@contextmanager
def memcached_nodes(count: int = 2) -> Iterator[list[ManagedProcess]]:
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        yield [
            stack.enter_context(memcached_process(log_path=Path(tmp) / f"memcached-{i}.log"))
            for i in range(count)
        ]


def direct(node: ManagedProcess) -> Client:
    """A plain client of one node: what that node holds, bypassing any placement."""
    return Client((node.host, node.port), connect_timeout=1.0, timeout=1.0)


def node_stat(client: Client, name: str) -> int:
    return int(client.stats()[name.encode()])


def stat_of(node: ManagedProcess, name: str) -> int:
    """One figure from the node's `stats`, over a connection opened for it."""
    client = direct(node)
    try:
        return node_stat(client, name)
    finally:
        client.close()
