"""Shared fixtures: real servers on free loopback ports, stopped after each test."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.settings import Settings
from devstack.memcached import memcached_process
from devstack.process import ManagedProcess
from tests.support.hung_server import HungServer


@pytest.fixture
def memcached() -> Iterator[ManagedProcess]:
    """A fresh memcached on a free port (1 MiB item limit, like production)."""
    with tempfile.TemporaryDirectory() as tmp:
        proc = memcached_process(log_path=Path(tmp) / "memcached.log")
        with proc:
            yield proc


@pytest.fixture
def hung_server() -> Iterator[HungServer]:
    with HungServer() as server:
        yield server


def make_settings(**overrides: object) -> Settings:
    """Settings for tests: a quiet, fast simulator unless a test says otherwise."""
    values: dict[str, object] = {
        "upstream_latency_ms": 1.0,
        "upstream_jitter_ms": 0.0,
        "upstream_seed": 7,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]
