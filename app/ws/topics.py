"""Topic names: what a client may subscribe to, normalized, and which family each belongs to.

Syntax is checked without I/O; symbols are checked against the market service's cached ticker
snapshot, so a client probing for symbols costs no upstream call beyond that snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from app.ws.stats import TOPIC_FAMILIES

TICKERS_PREFIX: Final = "tickers."
MOVERS: Final = "market.movers"
OVERVIEW: Final = "market.overview"
ALERTS: Final = "alerts"
FIXED_TOPICS: Final = frozenset({MOVERS, OVERVIEW, ALERTS})
#: Families whose updates are snapshots of a state: a new subscriber is sent the latest one at
#: once. Alerts are events, and an old one replayed would read as new.
SNAPSHOT_FAMILIES: Final = frozenset({"tickers", "market"})
MAX_TOPIC_LENGTH: Final = 64
_SYMBOL = re.compile(r"[A-Z0-9]{2,20}")

TickerMap = Callable[[], Awaitable[Mapping[str, Any]]]


def family_of(topic: str) -> str | None:
    """The bounded family of a topic (tickers, market, alerts), or None for anything else."""
    family = topic.partition(".")[0].lower()
    return family if family in TOPIC_FAMILIES else None


def common_family(topics: Iterable[str]) -> str | None:
    """The family all `topics` share, or None if they are mixed, unknown or absent."""
    families = {family_of(t) for t in topics}
    return families.pop() if len(families) == 1 else None


def normalize(topic: str) -> str | None:
    """The canonical spelling of a well-formed topic (symbols upper-case), or None.

    Well-formed is not known: a ticker topic still needs its symbol checked.
    """
    lowered = topic.lower()
    if lowered in FIXED_TOPICS:
        return lowered
    if lowered.startswith(TICKERS_PREFIX):
        symbol = topic[len(TICKERS_PREFIX) :].upper()
        if _SYMBOL.fullmatch(symbol):
            return TICKERS_PREFIX + symbol
    return None


def ticker_symbol(topic: str) -> str | None:
    """The symbol of a normalized ticker topic, None for other topics."""
    return topic[len(TICKERS_PREFIX) :] if topic.startswith(TICKERS_PREFIX) else None


@dataclass(frozen=True, slots=True)
class Resolution:
    """Requested topics split into known (normalized, in request order, no duplicates) and not."""

    known: tuple[str, ...]
    unknown: tuple[str, ...]


class TopicCatalog:
    """Decides which topics exist; ticker symbols come from `ticker_map` (a cached snapshot)."""

    def __init__(self, ticker_map: TickerMap) -> None:
        self._ticker_map = ticker_map

    async def resolve(self, requested: Iterable[str]) -> Resolution:
        """Normalize and check topics; raises what `ticker_map` raises (upstream errors)."""
        known: dict[str, None] = {}
        unknown: list[str] = []
        pending: dict[str, str] = {}
        for raw in requested:
            topic = normalize(raw)
            if topic is None:
                unknown.append(raw)
            elif ticker_symbol(topic) is None:
                known[topic] = None
            else:
                pending[raw] = topic
                known[topic] = None
        if pending:
            symbols = await self._ticker_map()
            for raw, topic in pending.items():
                if ticker_symbol(topic) not in symbols:
                    unknown.append(raw)
                    known.pop(topic, None)
        return Resolution(tuple(known), tuple(unknown))
