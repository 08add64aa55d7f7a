"""Namespaces and their TTLs come from one table: the manager knows exactly those, each with its
configured TTL."""

from __future__ import annotations

from app.cache import DEFAULT_NAMESPACES, build_cache_manager
from app.cache.namespaces import NAMESPACES, namespace_ttls
from tests.conftest import make_settings


def test_every_namespace_has_the_ttl_of_its_setting() -> None:
    settings = make_settings(market_ttl=3, dashboard_ttl=7, analysis_ttl=41)
    assert namespace_ttls(settings) == {"api": 3, "market": 3, "analysis": 41, "dashboard": 7}
    assert tuple(namespace_ttls(settings)) == NAMESPACES == DEFAULT_NAMESPACES


def test_the_built_manager_uses_the_table() -> None:
    settings = make_settings(market_ttl=3, dashboard_ttl=7, analysis_ttl=41, cache_default_ttl=99)
    manager = build_cache_manager(settings)
    assert manager.namespaces == frozenset(NAMESPACES)
    assert {ns: manager.ttl_for(ns) for ns in NAMESPACES} == namespace_ttls(settings)
