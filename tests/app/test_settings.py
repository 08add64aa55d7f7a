from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.settings import Settings


def test_defaults_keep_the_documented_names(monkeypatch: pytest.MonkeyPatch) -> None:
    s = Settings()
    assert s.cache_default_ttl == 300
    assert (s.cache_connection_pool_min, s.cache_connection_pool_max) == (5, 20)
    assert s.cache_cleanup_interval == 30
    assert s.memcached_servers == []
    monkeypatch.setenv("CACHE_DEFAULT_TTL", "60")
    monkeypatch.setenv("MEMCACHED_SERVERS", "127.0.0.1:11211, 10.0.0.2:11212")
    monkeypatch.setenv("CACHE_BREAKER_COOLDOWN", "2.5")
    s = Settings()
    assert s.cache_default_ttl == 60
    assert s.memcached_servers == ["127.0.0.1:11211", "10.0.0.2:11212"]
    assert s.cache_breaker_cooldown == 2.5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MEMCACHED_SERVERS", "localhost"),
        ("CACHE_CONNECTION_POOL_MIN", "50"),
        ("CACHE_DEFAULT_TTL", "0"),
        ("UPSTREAM_ERROR_RATE", "2"),
    ],
)
def test_bad_values_fail_at_start(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()
