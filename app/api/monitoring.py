"""Monitoring API, every route under `/api/monitoring/performance`: cache statistics, component
health, and the request, system and threshold views read from telemetry (`performance.py`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from app.api.performance import api_view, bottlenecks_view, telemetry_sections
from app.services import Services, get_services
from app.ws.summary import websocket_summary

router = APIRouter(prefix="/api/monitoring/performance", tags=["monitoring"])
AppServices = Annotated[Services, Depends(get_services)]


def cache_metrics(services: Services) -> dict[str, Any]:
    cache = services.cache
    stats = cache.stats
    return {
        "backend": cache.backend_name,
        "breaker_state": cache.breaker.state.value,
        "hits": stats.hits,
        "misses": stats.misses,
        "hit_rate": round(stats.hit_rate, 4),
        "errors": stats.errors,
        "fallbacks": sum(stats.fallbacks.values()),
        "fallbacks_by_reason": dict(stats.fallbacks),
        "oversized": stats.oversized,
        "decode_errors": stats.decode_errors,
        "loader_errors": stats.loader_errors,
        "leases": dict(stats.leases),
        "upstream_calls": services.upstream.calls,
        "namespaces": stats.per_namespace(),
        "memory": {
            "entries": cache.memory.entries,
            "bytes": cache.memory.bytes_used,
            "max_entries": cache.memory.max_entries,
            "max_bytes": cache.memory.max_bytes,
            "evictions": cache.memory.evictions,
        },
    }


def background_tasks(services: Services) -> dict[str, Any]:
    """Each periodic task: still scheduled, and how many of its ticks raised."""
    tasks = {services.cache.sweeper.name: services.cache.sweeper}
    tasks.update((task.name, task) for task in services.telemetry.background_tasks)
    return {name: {"running": t.running, "errors": t.errors} for name, t in tasks.items()}


def performance_summary(services: Services) -> dict[str, Any]:
    """Every section of the summary; a new section is one more key here, built in its module."""
    return {
        "cache": cache_metrics(services),
        "websocket": websocket_summary(services.ws),
        "background_tasks": background_tasks(services),
        **telemetry_sections(services.telemetry),
    }


@router.get("/summary")
async def summary(services: AppServices) -> dict[str, Any]:
    """Cache, API, WebSocket and system figures in one document."""
    return performance_summary(services)


@router.get("/metrics/cache")
async def metrics_cache(services: AppServices) -> dict[str, Any]:
    """Hits, misses, hit rate, errors, fallbacks, breaker state and upstream calls."""
    return cache_metrics(services)


@router.get("/health")
async def health(services: AppServices) -> dict[str, Any]:
    """200 while the service can answer; `degraded` while the in-memory fallback serves or the
    latest upstream call failed."""
    cache = await services.cache.health()
    components: dict[str, Any] = {
        "cache": cache,
        "upstream": {**services.upstream_health.report(), "calls": services.upstream.calls},
    }
    status = "degraded" if any(c["status"] != "ok" for c in components.values()) else "ok"
    return {"status": status, "components": components}


@router.get("/metrics/api", response_model=None)
async def metrics_api(services: AppServices) -> dict[str, Any]:
    """Requests, errors and latency quantiles per route template, since start."""
    return api_view(services)


@router.get("/bottlenecks", response_model=None)
async def bottlenecks(request: Request, services: AppServices) -> dict[str, Any]:
    """Which alert thresholds are breached now, judged like the alert rules judge them."""
    return bottlenecks_view(services, str(request.base_url))
