"""`market-stack`: memcached, the app, Prometheus and Alertmanager on 127.0.0.1, no Docker.

    market-stack                          # default ports, committed configuration
    market-stack --load cache-miss        # ... plus a load-generator scenario
    market-stack --scrape-interval 1s --evaluation-interval 1s --for 30

The servers are the machine's own binaries (`make test` installs them) started with the
configuration the `alerts` package ships: Prometheus from `alerts/prometheus.yml` (scraping the
app's `/metrics`, the rule files, exemplar storage on), Alertmanager from
`alerts/alertmanager.yml` (webhook pointed at the app). The app runs with
`ENABLE_FAULT_INJECTION=true` and the stack's memcached, so every alert can be provoked with
`market-load`. Ctrl-C (or SIGTERM) stops everything.

`Stack` is the same launcher as a class: the end-to-end alert tests start it on free ports with
1 s intervals and a copy of the rules whose `for:` durations are shortened (nothing else differs).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Final, TextIO

from alerts.files import RULES_DIR
from alerts.generate import render_rules
from devstack.alertmanager import alertmanager_process, write_alertmanager_config
from devstack.loadgen import LoadConfig, LoadGenerator, run_scenario
from devstack.memcached import memcached_process
from devstack.process import ManagedProcess, free_port
from devstack.prometheus import prometheus_process, write_prometheus_config
from devstack.readiness import HttpReadyProcess
from devstack.scenarios import SCENARIOS
from telemetry.thresholds import THRESHOLDS

HOST: Final = "127.0.0.1"
APP_READY_PATH: Final = "/api/monitoring/performance/health"
WEBHOOK_PATH: Final = "/api/alerts/webhook"


def shortened_rules(for_seconds: int) -> str:
    """The committed rules with every `for:` cut to at most `for_seconds`; nothing else changes
    (thresholds, expressions, windows, labels and annotations stay those of production)."""
    if for_seconds < 1:
        raise ValueError("for_seconds must be at least 1")
    return render_rules(
        dataclasses.replace(t, for_seconds=min(t.for_seconds, for_seconds)) for t in THRESHOLDS
    )


@dataclass(frozen=True, slots=True)
class StackConfig:
    """Ports default to the ones the committed configuration names (app 8000, Alertmanager
    9093) and the servers' usual ones (memcached 11211, Prometheus 9090)."""

    app_port: int = 8000
    memcached_port: int = 11211
    prometheus_port: int = 9090
    alertmanager_port: int = 9093
    scrape_interval: str | None = None
    """None keeps the committed value (15s)."""
    evaluation_interval: str | None = None
    for_seconds: int | None = None
    """Shorten every alert's `for:` to at most this many seconds (None: committed rules)."""
    workdir: Path | None = None
    """Configs, data and logs; None: a temporary directory removed at stop."""
    app_env: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Extra settings for the app (e.g. `{"LOG_LEVEL": "warning"}`)."""

    @classmethod
    def on_free_ports(cls, **options: object) -> StackConfig:
        ports = {
            "app_port": free_port(),
            "memcached_port": free_port(),
            "prometheus_port": free_port(),
            "alertmanager_port": free_port(),
        }
        return cls(**{**ports, **options})  # type: ignore[arg-type]


class Stack:
    """Start with `start()` or `with Stack(config) as stack:`; `stop()` always stops every
    process it started, in reverse order, whatever failed before."""

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.memcached: ManagedProcess | None = None
        self.app: HttpReadyProcess | None = None
        self.alertmanager: HttpReadyProcess | None = None
        self.prometheus: HttpReadyProcess | None = None
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._root: Path | None = None
        self._paused = False

    # ------------------------------------------------------------------ addresses
    @property
    def workdir(self) -> Path:
        if self._root is None:
            raise RuntimeError("the stack is not started")
        return self._root

    @property
    def app_url(self) -> str:
        return f"http://{HOST}:{self.config.app_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.config.app_port}/ws/dashboard"

    @property
    def prometheus_url(self) -> str:
        return f"http://{HOST}:{self.config.prometheus_port}"

    @property
    def alertmanager_url(self) -> str:
        return f"http://{HOST}:{self.config.alertmanager_port}"

    @property
    def memcached_address(self) -> str:
        return f"{HOST}:{self.config.memcached_port}"

    @property
    def rules_file(self) -> Path | None:
        """The shortened rule copy Prometheus loads, None when it loads the committed rules."""
        if self.config.for_seconds is None:
            return None
        return self.workdir / "rules" / "market-api.rules.yml"

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Stack:
        try:
            self._prepare_workdir()
            root = self.workdir
            self.memcached = memcached_process(
                self.config.memcached_port, log_path=root / "memcached.log"
            ).start()
            self.start_app()
            am_config = write_alertmanager_config(
                root / "alertmanager.yml", self.app_url + WEBHOOK_PATH
            )
            self.alertmanager = alertmanager_process(
                am_config,
                root / "alertmanager-data",
                self.config.alertmanager_port,
                log_path=root / "alertmanager.log",
            ).start()
            prom_config = write_prometheus_config(
                root / "prometheus.yml",
                app_target=f"{HOST}:{self.config.app_port}",
                alertmanager=f"{HOST}:{self.config.alertmanager_port}",
                rule_files=self._write_rules(),
                scrape_interval=self.config.scrape_interval,
                evaluation_interval=self.config.evaluation_interval,
            )
            self.prometheus = prometheus_process(
                prom_config,
                root / "prometheus-data",
                self.config.prometheus_port,
                log_path=root / "prometheus.log",
            ).start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.resume_app()  # a stopped (SIGSTOP) process would never see SIGTERM
        for process in (self.prometheus, self.alertmanager, self.app, self.memcached):
            if process is not None:
                with contextlib.suppress(Exception):
                    process.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self._root = None

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ the app alone
    def start_app(self) -> HttpReadyProcess:
        """Start the app (again, after `stop_app`) on its port; returns once it answers."""
        if self.app is not None and self.app.running:
            return self.app
        root = self.workdir
        env = {
            "APP_HOST": HOST,
            "APP_PORT": str(self.config.app_port),
            "MEMCACHED_SERVERS": self.memcached_address,
            "ENABLE_FAULT_INJECTION": "true",
            **self.config.app_env,
        }
        argv = [sys.executable, "-c", "from app.cli import main; main()"]
        self.app = HttpReadyProcess(
            "app",
            argv,
            HOST,
            self.config.app_port,
            ready_path=APP_READY_PATH,
            log_path=root / "app.log",
            env=env,
        )
        self._paused = False
        return self.app.start(ready_timeout=30.0)

    def stop_app(self) -> None:
        self.resume_app()
        if self.app is not None:
            self.app.stop()

    def pause_app(self) -> None:
        """SIGSTOP the app: it keeps its port and sockets but answers nothing, as a hung
        process does. Connections made meanwhile wait in its listen backlog."""
        proc = self.app.proc if self.app is not None else None
        if proc is None or proc.poll() is not None:
            raise RuntimeError("the app is not running")
        os.kill(proc.pid, signal.SIGSTOP)
        self._paused = True

    def resume_app(self) -> None:
        proc = self.app.proc if self.app is not None else None
        if self._paused and proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
        self._paused = False

    # ------------------------------------------------------------------ internals
    def _prepare_workdir(self) -> None:
        if self.config.workdir is not None:
            self._root = self.config.workdir
            self._root.mkdir(parents=True, exist_ok=True)
            # Fresh data each start: an old TSDB or notification log would replay old alerts.
            for data in ("prometheus-data", "alertmanager-data"):
                shutil.rmtree(self._root / data, ignore_errors=True)
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="market-stack-")
            self._root = Path(self._tmp.name)

    def _write_rules(self) -> list[Path] | None:
        target = self.rules_file
        if target is None or self.config.for_seconds is None:
            return None
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(shortened_rules(self.config.for_seconds))
        return [target]


# ---------------------------------------------------------------------- command line
def describe(stack: Stack, out: TextIO) -> None:
    pid = stack.app.proc.pid if stack.app is not None and stack.app.proc is not None else "?"
    rules = stack.rules_file or f"{RULES_DIR} (committed)"
    out.write(
        f"market-stack: everything on {HOST}; configs and logs in {stack.workdir}\n"
        f"  app           {stack.app_url}  (pid {pid}, fault injection on)\n"
        f"  memcached     {stack.memcached_address}\n"
        f"  prometheus    {stack.prometheus_url}  (rules: {rules})\n"
        f"  alertmanager  {stack.alertmanager_url}\n"
        f"Provoke an alert: market-load --url {stack.app_url} --scenario NAME "
        f"(see market-load --list); MarketApiDown: kill -STOP {pid}, then kill -CONT {pid}.\n"
        "Ctrl-C stops everything.\n"
    )
    out.flush()


async def _serve(stack: Stack, load: LoadGenerator | None, scenario: str | None) -> None:
    """Run until SIGINT/SIGTERM; report a server that exits (the stack keeps running: a
    stopped app is how MarketApiDown is provoked)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    load_task = None
    if load is not None and scenario is not None:
        load_task = asyncio.create_task(run_scenario(SCENARIOS[scenario], load))
    reported: set[str] = set()
    try:
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await stop.wait()
            for process in (stack.memcached, stack.app, stack.alertmanager, stack.prometheus):
                if process is None or process.proc is None:
                    continue
                code = process.proc.poll()
                if code is not None and process.name not in reported:
                    reported.add(process.name)
                    print(f"\nmarket-stack: {process.name} exited with {code}", file=sys.stderr)
    finally:
        if load is not None and load_task is not None:
            load.stop()
            with contextlib.suppress(Exception):
                await load_task


def _parser() -> argparse.ArgumentParser:
    defaults = StackConfig()
    parser = argparse.ArgumentParser(
        prog="market-stack",
        description="memcached + the app + Prometheus + Alertmanager on 127.0.0.1, from the "
        "machine's binaries and the configuration shipped in the package; Ctrl-C stops everything.",
    )
    parser.add_argument("--app-port", type=int, default=defaults.app_port)
    parser.add_argument("--memcached-port", type=int, default=defaults.memcached_port)
    parser.add_argument("--prometheus-port", type=int, default=defaults.prometheus_port)
    parser.add_argument("--alertmanager-port", type=int, default=defaults.alertmanager_port)
    parser.add_argument("--scrape-interval", help="e.g. 1s (default: the committed 15s)")
    parser.add_argument("--evaluation-interval", help="e.g. 1s (default: the committed 15s)")
    parser.add_argument(
        "--for",
        dest="for_seconds",
        type=int,
        help="shorten every alert's `for:` to at most this many seconds (demos only)",
    )
    parser.add_argument("--workdir", type=Path, help="keep configs, data and logs here")
    parser.add_argument(
        "--load", choices=list(SCENARIOS), help="also run this market-load scenario"
    )
    parser.add_argument("--load-rate", type=float, help="requests per second of --load")
    parser.add_argument(
        "--load-duration", type=float, default=3600.0, help="seconds of --load (default 3600)"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        config = StackConfig(
            app_port=args.app_port,
            memcached_port=args.memcached_port,
            prometheus_port=args.prometheus_port,
            alertmanager_port=args.alertmanager_port,
            scrape_interval=args.scrape_interval,
            evaluation_interval=args.evaluation_interval,
            for_seconds=args.for_seconds,
            workdir=args.workdir,
        )
        load = None
        if args.load is not None:
            scenario = SCENARIOS[args.load]
            load = LoadGenerator(
                LoadConfig(
                    url=f"http://{HOST}:{config.app_port}",
                    rate=scenario.rate if args.load_rate is None else args.load_rate,
                    duration=args.load_duration,
                    websockets=scenario.websockets,
                )
            )
    except ValueError as exc:
        parser.error(str(exc))
    stack = Stack(config)
    # SIGTERM during start-up must still stop what was started, as Ctrl-C does.
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        stack.start()
        describe(stack, sys.stdout)
        asyncio.run(_serve(stack, load, args.load))
    except KeyboardInterrupt:
        pass
    except (OSError, RuntimeError, TimeoutError, ValueError) as exc:
        print(f"market-stack: {exc}", file=sys.stderr)
        return 1
    finally:
        # Stopping is bounded (SIGTERM, then SIGKILL after 10 s): let nothing interrupt it.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("\nmarket-stack: stopping", file=sys.stderr)
        stack.stop()
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    raise SystemExit(main())
