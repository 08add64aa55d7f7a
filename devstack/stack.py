"""`market-stack`: memcached, the app, Prometheus and Alertmanager on 127.0.0.1, no Docker.

    market-stack                          # default ports, committed configuration
    market-stack --load cache-miss        # ... plus a load-generator scenario
    market-stack --scrape-interval 1s --evaluation-interval 1s --for 30
    market-stack --replicas 3              # nginx in front of 3 replicas, 2 memcached, redis

The servers are the machine's own binaries (`make test` installs them) started with the
configuration the `alerts` package ships: Prometheus from `alerts/prometheus.yml` (scraping the
app's `/metrics`, the rule files, exemplar storage on), Alertmanager from
`alerts/alertmanager.yml` (webhook pointed at the app). The app runs with
`ENABLE_FAULT_INJECTION=true` and the stack's memcached, so every alert can be provoked with
`market-load`. Ctrl-C (or SIGTERM) stops everything.

With `--replicas N` (N > 1) the service is a fleet: nginx (devstack/nginx.py) listens on the app
port and balances over N replicas on ports of their own, which share two memcached nodes, one
redis-server (broadcasts between replicas, the feed's leader) and one exchange simulator (so every
replica quotes the same prices); Prometheus scrapes every replica (`instance` tells them apart)
and Alertmanager's webhook goes through nginx. nginx connects to the replicas from PROXY_ADDRESS,
the only address they believe X-Forwarded-* from. With one replica (the default) the stack is
the app alone on the app port, as it always was.

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
from typing import Any, Final, TextIO

from alerts.files import RULES_DIR
from alerts.generate import render_rules
from app.settings import Settings
from devstack.alertmanager import alertmanager_process, write_alertmanager_config
from devstack.loadgen import LoadConfig, LoadGenerator, run_scenario
from devstack.memcached import memcached_process
from devstack.nginx import ProxyLimits, nginx_process, write_nginx_config
from devstack.process import ManagedProcess, free_port
from devstack.prometheus import prometheus_process, write_prometheus_config
from devstack.readiness import HttpReadyProcess
from devstack.redis import redis_process
from devstack.scenarios import SCENARIOS
from telemetry.thresholds import THRESHOLDS

HOST: Final = "127.0.0.1"
APP_READY_PATH: Final = "/api/monitoring/performance/health"
WEBHOOK_PATH: Final = "/api/alerts/webhook"
PROXY_ADDRESS: Final = "127.0.0.2"
"""Source address of nginx's connections to the replicas (Linux routes all of 127.0.0.0/8 to the
loopback interface): replicas trust X-Forwarded-* from it alone, so a local client connecting
straight to a replica from 127.0.0.1 cannot choose the address the replica records."""


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
    replicas: int = 1
    """Above 1: nginx on `app_port` in front of that many replicas (see the module docstring)."""
    replica_ports: tuple[int, ...] = ()
    """Ports of the replicas (replicas > 1); empty: free ports chosen at start."""
    second_memcached_port: int | None = None
    redis_port: int | None = None
    exchange_port: int | None = None
    """Ports of the fleet's second memcached, redis-server and exchange simulator; None: free
    ports chosen at start."""

    def __post_init__(self) -> None:
        if self.replicas < 1:
            raise ValueError("replicas must be at least 1")
        if self.replica_ports and len(self.replica_ports) != self.replicas:
            raise ValueError("replica_ports must name one port per replica")

    @property
    def fleet(self) -> bool:
        return self.replicas > 1

    @classmethod
    def on_free_ports(cls, **options: object) -> StackConfig:
        ports: dict[str, object] = {
            "app_port": free_port(),
            "memcached_port": free_port(),
            "prometheus_port": free_port(),
            "alertmanager_port": free_port(),
        }
        replicas = options.get("replicas", 1)
        if isinstance(replicas, int) and replicas > 1:
            ports["replica_ports"] = tuple(free_port() for _ in range(replicas))
            ports["second_memcached_port"] = free_port()
            ports["redis_port"] = free_port()
            ports["exchange_port"] = free_port()
        return cls(**{**ports, **options})  # type: ignore[arg-type]


class Stack:
    """Start with `start()` or `with Stack(config) as stack:`; `stop()` always stops every
    process it started, in reverse order, whatever failed before."""

    def __init__(self, config: StackConfig | None = None) -> None:
        self.config = config or StackConfig()
        self.memcached: ManagedProcess | None = None
        self.second_memcached: ManagedProcess | None = None
        self.redis: ManagedProcess | None = None
        self.exchange: ManagedProcess | None = None
        self.replicas: list[HttpReadyProcess | None] = [None] * self.config.replicas
        self.nginx: HttpReadyProcess | None = None
        self.alertmanager: HttpReadyProcess | None = None
        self.prometheus: HttpReadyProcess | None = None
        self._replica_ports = self.config.replica_ports
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._root: Path | None = None
        self._paused: set[int] = set()

    # ------------------------------------------------------------------ addresses
    @property
    def workdir(self) -> Path:
        if self._root is None:
            raise RuntimeError("the stack is not started")
        return self._root

    @property
    def app(self) -> HttpReadyProcess | None:
        """The app alone, or the first replica of a fleet."""
        return self.replicas[0]

    @property
    def app_url(self) -> str:
        """The service's URL: the app's, or nginx's in front of the replicas."""
        return f"http://{HOST}:{self.config.app_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://{HOST}:{self.config.app_port}/ws/dashboard"

    @property
    def replica_ports(self) -> tuple[int, ...]:
        if not self.config.fleet:
            return (self.config.app_port,)
        if not self._replica_ports:
            self._replica_ports = tuple(free_port() for _ in range(self.config.replicas))
        return self._replica_ports

    @property
    def replica_urls(self) -> list[str]:
        return [f"http://{HOST}:{port}" for port in self.replica_ports]

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
    def memcached_addresses(self) -> list[str]:
        """Every memcached node the app (each replica) uses."""
        nodes = [self.memcached_address]
        if self.second_memcached is not None:
            nodes.append(self.second_memcached.address)
        return nodes

    @property
    def redis_url(self) -> str | None:
        return f"redis://{self.redis.address}/0" if self.redis is not None else None

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
            if self.config.fleet:
                self._start_fleet_backends()
            for index in range(self.config.replicas):
                self.start_replica(index)
            if self.config.fleet:
                self.start_nginx()
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
                app_target=[f"{HOST}:{port}" for port in self.replica_ports],
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
        for index in list(self._paused):  # a stopped (SIGSTOP) process would never see SIGTERM
            self.resume_replica(index)
        for process in self.processes()[::-1]:
            with contextlib.suppress(Exception):
                process.stop()
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
            self._root = None

    def processes(self) -> list[ManagedProcess]:
        """Every process started, in start order."""
        started: list[ManagedProcess | None] = [
            self.memcached,
            self.second_memcached,
            self.redis,
            self.exchange,
            *self.replicas,
            self.nginx,
            self.alertmanager,
            self.prometheus,
        ]
        return [process for process in started if process is not None]

    def __enter__(self) -> Stack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ the app alone
    def start_app(self) -> HttpReadyProcess:
        """Start the app (the first replica of a fleet) again, after `stop_app`, on its port;
        returns once it answers."""
        return self.start_replica(0)

    def stop_app(self) -> None:
        self.resume_app()
        if self.app is not None:
            self.app.stop()

    def pause_app(self) -> None:
        """SIGSTOP the app (the first replica of a fleet); see `pause_replica`."""
        self.pause_replica(0)

    def resume_app(self) -> None:
        self.resume_replica(0)

    def pause_replica(self, index: int) -> None:
        """SIGSTOP replica `index`: it keeps its port and sockets but answers nothing, as a hung
        process does. Connections made meanwhile wait in its listen backlog."""
        replica = self.replicas[index]
        proc = replica.proc if replica is not None else None
        if proc is None or proc.poll() is not None:
            raise RuntimeError("the app is not running")
        os.kill(proc.pid, signal.SIGSTOP)
        self._paused.add(index)

    def resume_replica(self, index: int) -> None:
        replica = self.replicas[index]
        proc = replica.proc if replica is not None else None
        if index in self._paused and proc is not None and proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
        self._paused.discard(index)

    # ------------------------------------------------------------------ replicas and nginx
    def start_replica(self, index: int) -> HttpReadyProcess:
        """Start replica `index` (again) on its port; returns once it answers."""
        current = self.replicas[index]
        if current is not None and current.running:
            return current
        port = self.replica_ports[index]
        name = f"replica-{index + 1}" if self.config.fleet else "app"
        replica = HttpReadyProcess(
            name,
            [sys.executable, "-c", "from app.cli import main; main()"],
            HOST,
            port,
            ready_path=APP_READY_PATH,
            log_path=self.workdir / f"{name}.log",
            env=self._replica_env(port),
        )
        self.replicas[index] = replica
        self._paused.discard(index)
        return replica.start(ready_timeout=30.0)

    def kill_replica(self, index: int) -> None:
        """SIGKILL replica `index`, as a crash would: no graceful close of its sockets."""
        replica = self.replicas[index]
        if replica is None or not replica.running:
            raise RuntimeError(f"replica {index + 1} is not running")
        self.resume_replica(index)
        replica.kill()

    def start_nginx(self) -> HttpReadyProcess:
        """Start nginx (again) on the app port in front of every replica."""
        if self.nginx is not None and self.nginx.running:
            return self.nginx
        prefix = self.workdir / "nginx"
        config = write_nginx_config(
            prefix,
            listen=f"{HOST}:{self.config.app_port}",
            replicas=[f"{HOST}:{port}" for port in self.replica_ports],
            limits=ProxyLimits.for_app(Settings(**self._settings_overrides())),
            bind_address=PROXY_ADDRESS,
        )
        self.nginx = nginx_process(prefix, config, self.config.app_port)
        return self.nginx.start()

    def kill_nginx(self) -> None:
        """SIGKILL nginx's master and workers at once, as a crash of its host would: a master
        killed alone leaves its workers serving."""
        proc = self.nginx.proc if self.nginx is not None else None
        if proc is None or proc.poll() is not None:
            raise RuntimeError("nginx is not running")
        os.killpg(proc.pid, signal.SIGKILL)  # its own session: the group is nginx alone
        proc.wait(5)

    # ------------------------------------------------------------------ internals
    def _start_fleet_backends(self) -> None:
        root = self.workdir
        self.second_memcached = memcached_process(
            self.config.second_memcached_port, log_path=root / "memcached-2.log"
        ).start()
        self.redis = redis_process(self.config.redis_port, log_path=root / "redis.log").start()
        exchange_port = self.config.exchange_port or free_port()
        argv = [sys.executable, "-c", "from devstack.exchange_sim import main; main()"]
        self.exchange = ManagedProcess(
            "exchange-sim",
            [*argv, "--host", HOST, "--port", str(exchange_port)],
            HOST,
            exchange_port,
            log_path=root / "exchange-sim.log",
        ).start()

    def _replica_env(self, port: int) -> dict[str, str]:
        env = {
            "APP_HOST": HOST,
            "APP_PORT": str(port),
            "MEMCACHED_SERVERS": ",".join(self.memcached_addresses),
            "ENABLE_FAULT_INJECTION": "true",
        }
        if self.config.fleet:
            if self.redis_url is None or self.exchange is None:
                raise RuntimeError("the fleet's redis-server and exchange simulator start first")
            resource = f"service.instance.id={HOST}:{port}"
            inherited = os.environ.get("OTEL_RESOURCE_ATTRIBUTES")
            env |= {
                "REDIS_URL": self.redis_url,
                "UPSTREAM_URL": f"http://{self.exchange.address}",
                "FORWARDED_ALLOW_IPS": PROXY_ADDRESS,
                "OTEL_RESOURCE_ATTRIBUTES": f"{inherited},{resource}" if inherited else resource,
            }
        return {**env, **self.config.app_env}

    def _settings_overrides(self) -> dict[str, Any]:
        """The app's settings given to the stack that bound what nginx lets through."""
        limits = (
            "http_max_header_bytes",
            "http_header_timeout",
            "alert_notification_max_bytes",
            "ws_idle_timeout",
            "ws_cleanup_interval",
        )
        return {
            name: value
            for name in limits
            if (value := self.config.app_env.get(name.upper())) is not None
        }

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
    interval = stack.config.scrape_interval
    scrape = f" --scrape-interval {interval}" if interval else ""
    if stack.config.fleet:
        nginx_pid = stack.nginx.proc.pid if stack.nginx and stack.nginx.proc else "?"
        replicas = "".join(
            f"  replica {index + 1}     {url}  (pid {_pid(replica)})\n"
            for index, (url, replica) in enumerate(
                zip(stack.replica_urls, stack.replicas, strict=True)
            )
        )
        exchange = stack.exchange.address if stack.exchange is not None else "?"
        services = (
            f"  service       {stack.app_url}  (nginx, pid {nginx_pid}, "
            f"{stack.config.replicas} replicas, fault injection on each)\n"
            f"{replicas}"
            f"  memcached     {', '.join(stack.memcached_addresses)}\n"
            f"  redis         {stack.redis_url}\n"
            f"  exchange sim  http://{exchange}\n"
        )
    else:
        services = (
            f"  app           {stack.app_url}  (pid {pid}, fault injection on)\n"
            f"  memcached     {stack.memcached_address}\n"
        )
    out.write(
        f"market-stack: everything on {HOST}; configs and logs in {stack.workdir}\n"
        f"{services}"
        f"  prometheus    {stack.prometheus_url}  (rules: {rules})\n"
        f"  alertmanager  {stack.alertmanager_url}\n"
        f"Dashboards without Grafana: python -m dashboards.preview --prometheus "
        f"{stack.prometheus_url} --out {stack.workdir / 'preview'}{scrape}\n"
        f"Provoke an alert: market-load --url {stack.app_url} --scenario NAME "
        f"(see market-load --list); MarketApiDown: kill -STOP {pid}, then kill -CONT {pid}.\n"
        "Ctrl-C stops everything.\n"
    )
    out.flush()


def _pid(process: ManagedProcess | None) -> int | str:
    return process.proc.pid if process is not None and process.proc is not None else "?"


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
            for process in stack.processes():
                if process.proc is None:
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
    parser.add_argument(
        "--replicas",
        type=int,
        default=defaults.replicas,
        help="app replicas; above 1, nginx on --app-port balances over them, with two memcached "
        "nodes, a redis-server and a shared exchange simulator (default 1: the app alone)",
    )
    parser.add_argument(
        "--app-port", type=int, default=defaults.app_port, help="the service's port (nginx's)"
    )
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
            replicas=args.replicas,
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
