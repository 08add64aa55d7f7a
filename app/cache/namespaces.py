"""The service's cache namespaces and where each one's TTL comes from, in one table.

Namespaces are a fixed set because they are metric labels; each is listed once, with the setting
its TTL is read from, so a namespace cannot exist without a TTL nor a TTL without a namespace.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from app.settings import Settings

TTL_SETTING: Final[Mapping[str, Callable[[Settings], int]]] = MappingProxyType(
    {
        # Derived API answers live as long as the upstream snapshot they are computed from.
        "api": lambda settings: settings.market_ttl,
        "market": lambda settings: settings.market_ttl,
        "analysis": lambda settings: settings.analysis_ttl,
        "dashboard": lambda settings: settings.dashboard_ttl,
    }
)
NAMESPACES: Final = tuple(TTL_SETTING)


def namespace_ttls(settings: Settings) -> dict[str, int]:
    """Each namespace's TTL in seconds, from `settings`."""
    return {namespace: ttl(settings) for namespace, ttl in TTL_SETTING.items()}
