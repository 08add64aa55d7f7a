"""A background task that fails for a while, in the app under a real uvicorn server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from app.cache import MemoryBackend
from tests.app.ws.live import LiveServer
from tests.conftest import make_settings

pytestmark = pytest.mark.server

FAILURES = 3


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def uvicorn_log() -> Iterator[list[str]]:
    """uvicorn's own log ("uvicorn.error" does not reach the root logger)."""
    logger = logging.getLogger("uvicorn.error")
    handler = _Collect()
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


async def test_a_sweeper_that_fails_keeps_running_and_shutdown_stays_clean(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sweep = MemoryBackend.sweep
    calls: list[int] = []

    def flaky(self: MemoryBackend) -> int:
        calls.append(1)
        if len(calls) <= FAILURES:
            raise OSError(24, "Too many open files")
        return sweep(self)

    monkeypatch.setattr(MemoryBackend, "sweep", flaky)
    settings = make_settings(cache_cleanup_interval=0.05, gc_freeze=False)
    with uvicorn_log() as messages:
        server = LiveServer(settings).start()
        try:
            async with httpx.AsyncClient(base_url=server.http) as client:
                for _ in range(100):
                    if len(calls) > FAILURES + 2:
                        break
                    await asyncio.sleep(0.05)
                summary = (await client.get("/api/monitoring/performance/summary")).json()
                metrics = (await client.get("/metrics")).text
        finally:
            server.stop()
    assert len(calls) > FAILURES + 2  # it ran again after failing
    tasks = summary["background_tasks"]
    assert tasks["cache-sweeper"] == {"running": True, "errors": FAILURES}
    assert tasks["telemetry-window"]["errors"] == 0
    exported = [
        line
        for line in metrics.splitlines()
        if line.startswith("background_task_errors_total{") and 'task="cache-sweeper"' in line
    ]
    assert len(exported) == 1
    assert exported[0].endswith(f"}} {FAILURES}.0")
    # uvicorn logs "Application shutdown failed. Exiting." (an error) when the lifespan raises.
    assert not [m for m in messages if "shutdown failed" in m.lower()]
