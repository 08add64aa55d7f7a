"""Everything stateful the app owns, built in the lifespan and reached through dependencies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import HTTPConnection

from app.cache import CacheManager
from app.market.service import MarketService
from app.settings import Settings
from app.upstream.client import ExchangeClient


@dataclass
class Services:
    settings: Settings
    cache: CacheManager
    upstream: ExchangeClient
    market: MarketService
    extras: dict[str, Any] = field(default_factory=dict)


def get_services(conn: HTTPConnection) -> Services:
    services: Services = conn.app.state.services
    return services


def get_cache(conn: HTTPConnection) -> CacheManager:
    return get_services(conn).cache


def get_market(conn: HTTPConnection) -> MarketService:
    return get_services(conn).market


def get_settings(conn: HTTPConnection) -> Settings:
    return get_services(conn).settings
