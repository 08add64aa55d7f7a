"""Live servers for the WebSocket tests, stopped after each test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.process import ManagedProcess
from devstack.redis import redis_process
from tests.app.ws.live import LiveServer
from tests.conftest import make_settings

StartServer = Callable[..., LiveServer]


@pytest.fixture
def live_server() -> Iterator[StartServer]:
    """Start the app under uvicorn with settings overrides; the feed is idle unless asked for.

    Keyword arguments are settings, plus `ws_max_size` (uvicorn's frame limit), `upstream`
    and `uvicorn` (more uvicorn.Config options).
    """
    servers: list[LiveServer] = []

    def start(
        *,
        ws_max_size: int | None = None,
        upstream: Any = None,
        uvicorn: dict[str, Any] | None = None,
        **overrides: object,
    ) -> LiveServer:
        values: dict[str, object] = {"gc_freeze": False, "ws_feed_interval": 3600.0}
        values.update(overrides)
        server = LiveServer(
            make_settings(**values), upstream=upstream, ws_max_size=ws_max_size, **(uvicorn or {})
        )
        servers.append(server.start())
        return server

    yield start
    for server in servers:
        server.__exit__()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[ManagedProcess]:
    """A fresh redis-server on a free port; a test may kill it and start another on its port."""
    with redis_process(log_path=tmp_path / "redis.log") as proc:
        yield proc
