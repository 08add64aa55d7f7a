from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from app.upstream.client import UpstreamUnavailable
from app.ws.topics import TopicCatalog, common_family, family_of, normalize, ticker_symbol


def test_normalize() -> None:
    assert normalize("tickers.btcusdt") == "tickers.BTCUSDT"
    assert normalize("TICKERS.EthUsdt") == "tickers.ETHUSDT"
    assert normalize("Market.Movers") == "market.movers"
    assert normalize("market.overview") == "market.overview"
    assert normalize("ALERTS") == "alerts"
    for bad in ["tickers.", "tickers.B", "tickers.BTC-USDT", "tickers.BTC USDT", "market", "x.y"]:
        assert normalize(bad) is None, bad
    assert ticker_symbol("tickers.BTCUSDT") == "BTCUSDT"
    assert ticker_symbol("market.movers") is None


def test_families_are_bounded() -> None:
    assert family_of("tickers.ANYTHING") == "tickers"
    assert family_of("market.overview") == "market"
    assert family_of("alerts") == "alerts"
    assert family_of("users.42") is None
    assert common_family(["tickers.A", "tickers.B"]) == "tickers"
    assert common_family(["tickers.A", "alerts"]) is None
    assert common_family([]) is None


class FakeTickers:
    def __init__(self, symbols: list[str], fail: bool = False) -> None:
        self.symbols = {s: {"symbol": s} for s in symbols}
        self.calls = 0
        self.fail = fail

    async def __call__(self) -> Mapping[str, Any]:
        self.calls += 1
        if self.fail:
            raise UpstreamUnavailable("/tickers", "down")
        return self.symbols


async def test_resolve_checks_symbols_against_the_snapshot() -> None:
    tickers = FakeTickers(["BTCUSDT", "ETHUSDT"])
    catalog = TopicCatalog(tickers)
    result = await catalog.resolve(
        ["tickers.btcusdt", "alerts", "tickers.BTCUSDT", "tickers.DOGEEUR", "bogus", "alerts"]
    )
    assert result.known == ("tickers.BTCUSDT", "alerts")
    assert result.unknown == ("bogus", "tickers.DOGEEUR")
    assert tickers.calls == 1


async def test_resolve_without_tickers_reads_nothing() -> None:
    tickers = FakeTickers([], fail=True)
    result = await TopicCatalog(tickers).resolve(["market.movers", "alerts"])
    assert result.known == ("market.movers", "alerts")
    assert tickers.calls == 0
    with pytest.raises(UpstreamUnavailable):
        await TopicCatalog(tickers).resolve(["tickers.BTCUSDT"])
