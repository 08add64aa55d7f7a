"""The dashboards of the service: fixed uids (URLs and links depend on them) and titles."""

from __future__ import annotations

from typing import Final, NamedTuple


class Entry(NamedTuple):
    uid: str
    title: str


OVERVIEW: Final = Entry("market-api", "Market API overview")
"""The target of `GET /performance` (`GRAFANA_DASHBOARD_URL`)."""
CACHE: Final = Entry("market-api-cache", "Market API cache")
WEBSOCKETS: Final = Entry("market-api-websockets", "Market API WebSockets")
RUNTIME: Final = Entry("market-api-runtime", "Market API runtime")
SLOW_REQUESTS: Final = Entry("market-api-slow-requests", "Market API slow requests")

ALL: Final = (OVERVIEW, CACHE, WEBSOCKETS, RUNTIME, SLOW_REQUESTS)
