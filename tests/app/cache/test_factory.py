"""Which tiers the settings build."""

from __future__ import annotations

from app.cache import CacheManager, build_cache_manager
from tests.conftest import make_settings


def test_factory_puts_a_near_cache_only_in_front_of_memcached() -> None:
    def build(**overrides: object) -> CacheManager:
        return build_cache_manager(make_settings(**overrides))

    assert build().near is None
    near = build(memcached_servers="127.0.0.1:1", cache_near_max_entries=7).near
    assert near is not None
    assert near.max_entries == 7
    assert build(memcached_servers="127.0.0.1:1", cache_near_max_entries=0).near is None
    assert build(memcached_servers="127.0.0.1:1", cache_version_refresh=0).near is None
