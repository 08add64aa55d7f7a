"""Alert scenarios for the load generator, and a client of the app's fault-injection API.

Each scenario names the alert it provokes, the faults it sets through `/api/admin/faults` (the
app must run with `ENABLE_FAULT_INJECTION=true`) and the traffic that makes them visible. With
the committed rules an alert fires only after its `for:` duration (5 to 15 minutes) and the rate
windows (5 minutes) or trend window (1 hour) behind it, so a scenario has to run that long.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

import httpx

FAULTS_PATH: Final = "/api/admin/faults"


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    alert: str | None
    """The alert this scenario provokes (None: it lets alerts resolve)."""
    summary: str
    faults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    """Set at the start (an empty mapping clears every fault)."""
    rate: float = 20.0
    """Default HTTP requests per second."""
    websockets: int = 0
    """Default number of sockets held open."""


_SCENARIOS: Final = (
    Scenario(
        "steady",
        None,
        "no fault, normal traffic: lets every alert resolve",
        rate=30.0,
    ),
    Scenario(
        "cache-miss",
        "MarketApiCacheHitRateLow",
        "every cache read misses and goes upstream",
        MappingProxyType({"force_cache_miss": True}),
        rate=10.0,
    ),
    Scenario(
        "slow-upstream",
        "MarketApiHighLatency",
        "300 ms more per upstream call: requests that wait for a refresh are slow",
        MappingProxyType({"upstream_latency_ms": 300}),
        rate=20.0,
    ),
    Scenario(
        "memory-high",
        "MarketApiMemoryHigh",
        "a 128 MiB ballast on top of the normal footprint",
        MappingProxyType({"ballast_mb": 128}),
        rate=5.0,
    ),
    Scenario(
        "memory-leak",
        "MarketApiMemoryLeakSuspected",
        "memory grows by 2 MiB a minute, up to 64 MiB (below the memory alert's threshold)",
        MappingProxyType({"leak_mb_per_minute": 2, "leak_max_mb": 64}),
        rate=5.0,
    ),
    Scenario(
        "websockets",
        "MarketApiTooManyWebSockets",
        "110 sockets held open, subscribed to the market feed",
        rate=5.0,
        websockets=110,
    ),
)
SCENARIOS: Final[Mapping[str, Scenario]] = MappingProxyType({s.name: s for s in _SCENARIOS})


class FaultInjectionDisabled(RuntimeError):
    """The app answers 404 on the faults API: it runs without ENABLE_FAULT_INJECTION."""


class FaultsClient:
    """`/api/admin/faults` of one app; every call raises httpx errors on a non-2xx answer."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    async def get(self) -> dict[str, Any]:
        return await self._send("GET")

    async def set(self, faults: Mapping[str, Any]) -> dict[str, Any]:
        """Replace every fault: knobs not given take their harmless defaults."""
        return await self._send("PUT", dict(faults))

    async def clear(self) -> dict[str, Any]:
        return await self._send("DELETE")

    async def _send(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = await self.client.request(method, FAULTS_PATH, json=body)
        if response.status_code == 404:
            raise FaultInjectionDisabled(
                f"{response.url} answers 404: start the app with ENABLE_FAULT_INJECTION=true"
            )
        response.raise_for_status()
        state: dict[str, Any] = response.json()
        return state
