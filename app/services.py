"""Everything stateful the app owns, built in the lifespan and reached through dependencies."""

from __future__ import annotations

from dataclasses import dataclass, field

from starlette.requests import HTTPConnection

from app.alerting import AlertHistory
from app.cache import CacheManager
from app.faults import FaultInjector
from app.market.service import MarketService
from app.settings import Settings
from app.upstream.client import ExchangeClient
from app.upstream.health import UpstreamHealth
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
    upstream_health: UpstreamHealth = field(default_factory=UpstreamHealth)


def services_of(conn: HTTPConnection) -> Services:
    services: Services = conn.app.state.services
    return services


# Dependencies are coroutines on purpose: FastAPI runs plain functions in a thread pool, a
# thread hop on every request for what is an attribute read.
async def get_services(conn: HTTPConnection) -> Services:
    return services_of(conn)


async def get_market(conn: HTTPConnection) -> MarketService:
    return services_of(conn).market


async def get_settings(conn: HTTPConnection) -> Settings:
    return services_of(conn).settings
