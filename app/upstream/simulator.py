"""A built-in exchange: random-walk prices for many symbols, with tunable latency and errors.

It is the default upstream so the service runs with nothing else installed, and it counts every
call it serves: that count is the number of external API calls the cache exists to reduce. The
conditions (latency, jitter, error rate) can be changed while it runs, which the fault-injection
endpoints use to provoke alerts on purpose.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass

from app.upstream.client import UnknownSymbol, UpstreamUnavailable
from app.upstream.models import PriceHistory, Ticker

# fmt: off
_BASES = (
    "BTC", "ETH", "BNB", "SOL", "XRP", "ADA", "DOGE", "TRX", "TON", "DOT", "MATIC", "LINK",
    "AVAX", "SHIB", "LTC", "BCH", "UNI", "ATOM", "XLM", "ETC", "FIL", "APT", "ARB", "OP", "NEAR",
    "ICP", "HBAR", "VET", "MKR", "AAVE", "GRT", "ALGO", "QNT", "EGLD", "SAND", "MANA", "AXS",
    "THETA", "FTM", "EOS", "XTZ", "FLOW", "CHZ", "KAVA", "ZEC", "DASH", "NEO", "IOTA", "CRV",
    "SNX", "COMP", "ENJ", "BAT", "ZIL", "1INCH", "SUSHI", "YFI", "RUNE", "GALA", "LDO", "INJ",
    "SUI", "SEI", "TIA", "JUP", "WIF", "PEPE", "BONK", "RNDR", "STX", "IMX", "KAS",
)
# fmt: on

# Starting prices of the best-known pairs, so the numbers look familiar on a dashboard.
_ANCHORS = {"BTC": 65_000.0, "ETH": 3_200.0, "BNB": 580.0, "SOL": 150.0, "XRP": 0.55}


@dataclass
class SimulatorConditions:
    """Mutable at run time."""

    latency_ms: float = 20.0
    jitter_ms: float = 10.0
    error_rate: float = 0.0


class ExchangeSimulator:
    """Prices move one step every `step_seconds` of wall time, computed lazily on each call."""

    def __init__(
        self,
        symbols: int = 60,
        conditions: SimulatorConditions | None = None,
        *,
        seed: int | None = None,
        step_seconds: float = 0.5,
        history_len: int = 1000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 1 <= symbols <= len(_BASES) * 3:
            raise ValueError(f"symbols must be 1..{len(_BASES) * 3}")
        self.conditions = conditions or SimulatorConditions()
        self.step_seconds = step_seconds
        self._rng = random.Random(seed)
        self._clock = clock
        quotes = ("USDT", "USDC", "FDUSD")
        self.symbols = [
            f"{_BASES[i % len(_BASES)]}{quotes[i // len(_BASES)]}" for i in range(symbols)
        ]
        self._known = frozenset(self.symbols)
        self._volatility = {s: self._rng.uniform(0.0004, 0.005) for s in self.symbols}
        self._drift = {s: self._rng.gauss(0.0, 0.00015) for s in self.symbols}
        self._closes: dict[str, deque[float]] = {}
        self._volume: dict[str, float] = {}
        for s in self.symbols:
            anchor = _ANCHORS.get(s[:-4]) if s.endswith("USDT") else None
            start = anchor or math.exp(self._rng.uniform(math.log(0.01), math.log(500)))
            self._closes[s] = deque([start], maxlen=history_len)
            self._volume[s] = 0.0
        self._last_step = self._clock()
        self._advance(history_len - 1)
        self._snapshot: dict[str, Ticker] = {}
        self._snapshot_step = -1
        self._steps = 0
        self.calls_by_endpoint: Counter[str] = Counter()

    @property
    def calls(self) -> int:
        return sum(self.calls_by_endpoint.values())

    def knows(self, symbol: str) -> bool:
        return symbol in self._known

    async def tickers(self) -> list[Ticker]:
        await self._serve("/tickers")
        return list(self._current().values())

    async def ticker(self, symbol: str) -> Ticker:
        await self._serve("/tickers/{symbol}")
        ticker = self._current().get(symbol)
        if ticker is None:
            raise UnknownSymbol(symbol)
        return ticker

    async def history(self, symbol: str, points: int) -> PriceHistory:
        await self._serve("/history/{symbol}")
        if symbol not in self._known:
            raise UnknownSymbol(symbol)
        self._catch_up()
        closes = list(self._closes[symbol])[-points:]
        return PriceHistory(symbol=symbol, step_seconds=self.step_seconds, closes=closes)

    async def close(self) -> None:
        return None

    async def _serve(self, endpoint: str) -> None:
        self.calls_by_endpoint[endpoint] += 1
        c = self.conditions
        delay = c.latency_ms + (self._rng.uniform(0, c.jitter_ms) if c.jitter_ms else 0.0)
        if delay > 0:
            await asyncio.sleep(delay / 1000)
        if c.error_rate and self._rng.random() < c.error_rate:
            raise UpstreamUnavailable(endpoint, "exchange returned an error (simulated)")

    def _catch_up(self) -> None:
        elapsed = self._clock() - self._last_step
        steps = int(elapsed / self.step_seconds)
        if steps > 0:
            maxlen = next(iter(self._closes.values())).maxlen or 1
            self._advance(min(steps, maxlen))
            self._last_step += steps * self.step_seconds
            self._steps += steps

    def _advance(self, steps: int) -> None:
        gauss = self._rng.gauss
        for s in self.symbols:
            closes = self._closes[s]
            price = closes[-1]
            sigma, drift = self._volatility[s], self._drift[s]
            volume = 0.0
            for _ in range(steps):
                price *= math.exp(gauss(drift, sigma))
                closes.append(price)
                volume += abs(gauss(0.0, 1.0)) * 1000 / max(price, 1e-9) ** 0.25
            self._volume[s] = self._volume[s] * 0.999**steps + volume

    def _current(self) -> dict[str, Ticker]:
        self._catch_up()
        if self._snapshot_step != self._steps:
            now_ms = int(self._last_step * 1000)
            snapshot = {}
            for s in self.symbols:
                closes = self._closes[s]
                price, open_ = closes[-1], closes[0]
                volume = self._volume[s]
                snapshot[s] = Ticker(
                    symbol=s,
                    price=round(price, 8),
                    open_24h=round(open_, 8),
                    high_24h=round(max(closes), 8),
                    low_24h=round(min(closes), 8),
                    change_pct_24h=round((price / open_ - 1) * 100, 4),
                    volume_24h=round(volume, 4),
                    quote_volume_24h=round(volume * price, 2),
                    updated_at_ms=now_ms,
                )
            self._snapshot = snapshot
            self._snapshot_step = self._steps
        return self._snapshot
