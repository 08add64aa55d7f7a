"""`market-load`: HTTP and WebSocket traffic against one Market API, with alert scenarios.

    market-load --scenario cache-miss --duration 900
    market-load --url http://127.0.0.1:8000 --rate 50 --websockets 20 --duration 60

HTTP requests follow a fixed schedule (`--rate` per second) through a bounded connection pool:
when the app is slower than the schedule, at most `max_in_flight` requests wait and the rest of
the schedule slips, so a slow app is never flooded. Sockets are held open, subscribed, and read
continuously (a socket that stops reading would be closed as a slow consumer). Everything stops at
`--duration` or on Ctrl-C, and the faults a scenario set are cleared on the way out.

Only loopback targets are accepted: this is a tool for a local stack, not for someone's server.
The same classes drive the end-to-end alert tests.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import random
import signal
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, TextIO
from urllib.parse import urlsplit

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import WebSocketException

from devstack.scenarios import SCENARIOS, FaultInjectionDisabled, FaultsClient, Scenario

DEFAULT_URL: Final = "http://127.0.0.1:8000"
MAX_RATE: Final = 2000.0
MAX_DURATION: Final = 24 * 3600.0
MAX_WEBSOCKETS: Final = 1000
LATENCY_SAMPLES: Final = 2048
"""Recent request durations kept for the live p95."""
WS_PATH: Final = "/ws/dashboard"
WS_PING_EVERY: Final = 30.0
"""Seconds between the protocol's `ping` ops, so the app's idle timeout never closes a socket
that is only listening."""
WS_RETRY_DELAY: Final = 1.0
PROGRESS_EVERY: Final = 0.5
Mix = Literal["dashboard", "movers"]
MIXES: Final[tuple[Mix, ...]] = ("dashboard", "movers")


def check_loopback(url: str) -> str:
    """`url` without a trailing slash, if it is http(s) on a loopback host; ValueError if not."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme not in ("http", "https") or not host:
        raise ValueError(f"{url!r} is not an http(s) URL")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValueError(f"{host!r} is not a loopback address: only local stacks are loaded")
    return url.rstrip("/")


@dataclass(frozen=True, slots=True)
class LoadConfig:
    url: str = DEFAULT_URL
    rate: float = 20.0
    """HTTP requests per second; 0 sends none (sockets only)."""
    duration: float = 60.0
    websockets: int = 0
    topics: tuple[str, ...] = ("market.movers",)
    """What each held socket subscribes to."""
    mix: Mix = "dashboard"
    """`dashboard`: what the dashboards ask for (movers, tickers, overview, analysis);
    `movers`: the movers board only, one cached answer, so nearly every lookup is a hit."""
    max_in_flight: int = 32
    """Requests waiting for an answer at once; also the connection pool's size."""
    timeout: float = 10.0
    max_requests: int | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", check_loopback(self.url))
        if not 0 <= self.rate <= MAX_RATE:
            raise ValueError(f"rate must be 0..{MAX_RATE:g} requests per second")
        if not 0 < self.duration <= MAX_DURATION:
            raise ValueError(f"duration must be in (0, {MAX_DURATION:g}] seconds")
        if not 0 <= self.websockets <= MAX_WEBSOCKETS:
            raise ValueError(f"websockets must be 0..{MAX_WEBSOCKETS}")
        if self.websockets and not self.topics:
            raise ValueError("sockets need at least one topic to subscribe to")
        if not 1 <= self.max_in_flight <= 1000:
            raise ValueError("max_in_flight must be 1..1000")
        if self.max_requests is not None and self.max_requests < 0:
            raise ValueError("max_requests must be >= 0")
        if self.mix not in MIXES:
            raise ValueError(f"mix must be one of {', '.join(MIXES)}")

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http") + WS_PATH


@dataclass
class LoadStats:
    """Running totals; `sent` is `ok` + `errors` + the requests still in flight."""

    started: float = field(default_factory=time.monotonic)
    sent: int = 0
    ok: int = 0
    errors: int = 0
    ws_open: int = 0
    ws_failures: int = 0
    ws_messages: int = 0
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_SAMPLES))

    def p95(self) -> float | None:
        """95th percentile of the recent request durations (s), None before any answer."""
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]

    def line(self, label: str, websockets: int) -> str:
        p95 = self.p95()
        shown = "-" if p95 is None else f"{p95 * 1000:.0f}ms"
        return (
            f"[{label}] {time.monotonic() - self.started:5.0f}s  sent {self.sent}  ok {self.ok}"
            f"  errors {self.errors}  p95 {shown}  sockets {self.ws_open}/{websockets}"
        )


class LoadGenerator:
    """Run with `await run()` (until the duration or `stop()`), or as an async context manager
    that runs in the background until the block ends."""

    def __init__(self, config: LoadConfig, stats: LoadStats | None = None) -> None:
        self.config = config
        self.stats = stats or LoadStats()
        self._stop = asyncio.Event()
        self._rng = random.Random(config.seed)
        self._symbols: list[str] = []
        self._task: asyncio.Task[LoadStats] | None = None

    def stop(self) -> None:
        self._stop.set()

    async def __aenter__(self) -> LoadGenerator:
        self._task = asyncio.create_task(self.run(), name="load-generator")
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()
        if self._task is not None:
            await self._task

    async def run(self) -> LoadStats:
        config = self.config
        limits = httpx.Limits(
            max_connections=config.max_in_flight, max_keepalive_connections=config.max_in_flight
        )
        async with httpx.AsyncClient(
            base_url=config.url, limits=limits, timeout=config.timeout
        ) as client:
            sockets = [
                asyncio.create_task(self._hold_socket(), name=f"load-socket-{i}")
                for i in range(config.websockets)
            ]
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(config.duration):
                        await self._drive(client)
                        if config.websockets:
                            await self._stop.wait()
            finally:
                self._stop.set()
                for task in sockets:
                    task.cancel()
                await asyncio.gather(*sockets, return_exceptions=True)
        return self.stats

    # ------------------------------------------------------------------ HTTP
    async def _drive(self, client: httpx.AsyncClient) -> None:
        """Send on schedule until stopped, the request budget is spent, or forever (the
        caller's timeout ends it)."""
        config = self.config
        if config.rate <= 0:
            return
        if config.mix == "dashboard":
            await self._discover_symbols(client)
        slots = asyncio.Semaphore(config.max_in_flight)
        pending: set[asyncio.Task[None]] = set()
        interval = 1.0 / config.rate
        next_at = time.monotonic()
        issued = 0
        try:
            while not self._stop.is_set():
                if config.max_requests is not None and issued >= config.max_requests:
                    return
                delay = next_at - time.monotonic()
                if delay > 0:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(delay):
                            await self._stop.wait()
                    continue
                await slots.acquire()
                # A schedule that fell behind restarts from now instead of bursting to catch up.
                next_at = max(next_at + interval, time.monotonic() - interval)
                task = asyncio.create_task(self._request(client, slots))
                issued += 1
                pending.add(task)
                task.add_done_callback(pending.discard)
        finally:
            # Stopped or timed out: drop what is in flight. Budget spent: let it finish.
            if self._stop.is_set() or _cancelling():
                for task in pending:
                    task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _discover_symbols(self, client: httpx.AsyncClient) -> None:
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError, TypeError):
            body = (await client.get("/api/market/movers", params={"limit": 50})).json()
            self._symbols = sorted(
                {row["symbol"] for side in ("gainers", "losers") for row in body[side]}
            )

    def _next_request(self) -> tuple[str, dict[str, Any]]:
        """The dashboard's mix: mostly the movers board, some tickers, overview and analysis."""
        roll = self._rng.random()
        if self.config.mix == "movers" or not self._symbols or roll < 0.55:
            return "/api/market/movers", {"limit": 10}
        symbol = self._rng.choice(self._symbols)
        if roll < 0.80:
            return f"/api/market/tickers/{symbol}", {}
        if roll < 0.92:
            return "/api/dashboard/overview", {}
        return "/api/analysis/regime", {"symbol": symbol, "window": 100}

    async def _request(self, client: httpx.AsyncClient, slots: asyncio.Semaphore) -> None:
        path, params = self._next_request()
        stats = self.stats
        stats.sent += 1
        start = time.perf_counter()
        try:
            response = await client.get(path, params=params)
        except asyncio.CancelledError:
            stats.sent -= 1  # dropped unanswered when the run stopped: not part of the tally
            raise
        except httpx.HTTPError:
            stats.errors += 1
        else:
            stats.latencies.append(time.perf_counter() - start)
            if response.is_success:
                stats.ok += 1
            else:
                stats.errors += 1
        finally:
            slots.release()

    # ------------------------------------------------------------------ WebSocket
    async def _hold_socket(self) -> None:
        """Keep one subscribed socket open until cancelled, reconnecting after a close."""
        while True:
            opened = False
            try:
                async with connect(
                    self.config.ws_url, ping_interval=None, open_timeout=self.config.timeout
                ) as ws:
                    await ws.send(
                        orjson.dumps(
                            {"op": "subscribe", "topics": list(self.config.topics)}
                        ).decode()
                    )
                    self.stats.ws_open += 1
                    opened = True
                    await self._listen(ws)
            except (OSError, TimeoutError, WebSocketException):
                self.stats.ws_failures += 1
            finally:
                if opened:
                    self.stats.ws_open -= 1
            await asyncio.sleep(WS_RETRY_DELAY)

    async def _listen(self, ws: ClientConnection) -> None:
        ping = orjson.dumps({"op": "ping"}).decode()
        last_sent = time.monotonic()
        while True:
            wait = last_sent + WS_PING_EVERY - time.monotonic()
            if wait <= 0:
                await ws.send(ping)
                last_sent = time.monotonic()
                continue
            try:
                async with asyncio.timeout(wait):
                    await ws.recv()
            except TimeoutError:
                continue
            self.stats.ws_messages += 1


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


# ---------------------------------------------------------------------- command line
async def _report(generator: LoadGenerator, label: str, out: TextIO) -> None:
    """One progress line, rewritten in place on a terminal, every few seconds otherwise."""
    every = PROGRESS_EVERY if out.isatty() else 5.0
    while True:
        await asyncio.sleep(every)
        _write_line(out, generator.stats.line(label, generator.config.websockets))


def _write_line(out: TextIO, line: str, *, final: bool = False) -> None:
    """On a terminal, overwrite the line in place (and end it when `final`)."""
    if out.isatty():
        out.write(f"\r{line}\x1b[K" + ("\n" if final else ""))
    else:
        out.write(f"{line}\n")
    out.flush()


async def run_scenario(
    scenario: Scenario,
    generator: LoadGenerator,
    *,
    keep_faults: bool = False,
    out: TextIO | None = None,
) -> LoadStats:
    """Set the scenario's faults, drive the generator's traffic with a live progress line, then
    clear the faults (unless `keep_faults`), also when the run is stopped or fails."""
    config = generator.config
    async with httpx.AsyncClient(base_url=config.url, timeout=config.timeout) as admin:
        faults = FaultsClient(admin)
        if scenario.faults:
            await faults.set(scenario.faults)
        elif scenario.alert is None:
            # Nothing to clear on an app that cannot inject faults at all.
            with contextlib.suppress(FaultInjectionDisabled):
                await faults.clear()
        reporter = asyncio.create_task(_report(generator, scenario.name, out or sys.stdout))
        try:
            stats = await generator.run()
        finally:
            reporter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporter
            last = generator.stats.line(scenario.name, config.websockets)
            _write_line(out or sys.stdout, last, final=True)
            if scenario.faults and not keep_faults:
                await faults.clear()
    return stats


async def _run_cli(scenario: Scenario, generator: LoadGenerator, keep_faults: bool) -> LoadStats:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, generator.stop)
    return await run_scenario(scenario, generator, keep_faults=keep_faults)


def _parser() -> argparse.ArgumentParser:
    names = ", ".join(SCENARIOS)
    parser = argparse.ArgumentParser(
        prog="market-load",
        description="Drive HTTP and WebSocket traffic at a local Market API; a scenario also "
        "sets the faults that provoke one alert (the app needs ENABLE_FAULT_INJECTION=true).",
    )
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the app (default {DEFAULT_URL})")
    parser.add_argument(
        "--scenario", default="steady", choices=list(SCENARIOS), help=f"one of: {names}"
    )
    parser.add_argument("--rate", type=float, help="HTTP requests per second (scenario default)")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds (default 60)")
    parser.add_argument("--websockets", type=int, help="sockets held open (scenario default)")
    parser.add_argument(
        "--topics",
        default="market.movers",
        help="comma-separated topics each socket subscribes to (default market.movers)",
    )
    parser.add_argument(
        "--mix", choices=MIXES, default="dashboard", help="requests sent (default dashboard)"
    )
    parser.add_argument("--max-requests", type=int, help="stop after this many requests")
    parser.add_argument(
        "--keep-faults", action="store_true", help="leave the scenario's faults set at the end"
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.list:
        for scenario in SCENARIOS.values():
            alert = scenario.alert or "(lets alerts resolve)"
            print(f"{scenario.name:14} {alert:30} {scenario.summary}")
        return 0
    scenario = SCENARIOS[args.scenario]
    try:
        config = LoadConfig(
            url=args.url,
            rate=scenario.rate if args.rate is None else args.rate,
            duration=args.duration,
            websockets=scenario.websockets if args.websockets is None else args.websockets,
            topics=tuple(t.strip() for t in args.topics.split(",") if t.strip()),
            mix=args.mix,
            max_requests=args.max_requests,
        )
    except ValueError as exc:
        parser.error(str(exc))
    try:
        asyncio.run(_run_cli(scenario, LoadGenerator(config), args.keep_faults))
    except (httpx.HTTPError, RuntimeError) as exc:
        print(f"\nmarket-load: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
