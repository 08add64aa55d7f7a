"""The WebSocket limits have one source: the `ws_*` settings."""

from __future__ import annotations

from dataclasses import asdict, fields

from app.ws.config import WebSocketConfig
from tests.conftest import make_settings


def test_defaults_are_the_settings_defaults() -> None:
    assert WebSocketConfig() == WebSocketConfig.from_settings(make_settings())


def test_every_limit_follows_its_setting() -> None:
    doubled = {
        f"ws_{f.name}": getattr(WebSocketConfig(), f.name) * 2 for f in fields(WebSocketConfig)
    }
    config = WebSocketConfig.from_settings(make_settings(**doubled))
    assert {f"ws_{k}": v for k, v in asdict(config).items()} == doubled
    assert config != WebSocketConfig()
