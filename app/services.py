"""Everything stateful the app owns, built in the lifespan and reached through dependencies."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from starlette.requests import HTTPConnection

from app.alerting import AlertHistory
from app.cache import CacheManager
from app.faults import FaultInjector
from app.market.service import MarketService
from app.settings import Settings
from app.upstream.client import ExchangeClient
from app.ws.manager import WebSocketManager
from telemetry.runtime import Telemetry


@dataclass
class Services:
    settings: Settings
    cache: CacheManager
    upstream: ExchangeClient
    market: MarketService
    telemetry: Telemetry | None = None
    ws: WebSocketManager | None = None
    alerts: AlertHistory = field(default_factory=AlertHistory)
    faults: FaultInjector | None = None
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
