"""`market-api`: run the service under uvicorn with the configured host and port."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from app.http_limits import limited_http_protocol
from app.settings import Settings
from app.ws.server import GracefulServer

DISTRIBUTION = "market-api"

# --- command line ------------------------------------------------------------------------------
# Everything else is configured by environment variables (README, "Configuration"): the command
# line only overrides where to listen and offers checks that start nothing.


def _package_version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="market-api",
        description="Serve the Market API under uvicorn. Configuration comes from environment "
        "variables (APP_HOST, APP_PORT, MEMCACHED_SERVERS, UPSTREAM_URL, ...); the options below "
        "override them.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_package_version()}")
    parser.add_argument("--host", help="interface to bind to (overrides APP_HOST)")
    parser.add_argument("--port", type=int, help="port to bind to (overrides APP_PORT)")
    parser.add_argument(
        "--check-config",
        action="store_true",
        help="validate the configuration from the environment, print a one-line summary and "
        "exit (0: valid, 2: invalid) without starting anything",
    )
    return parser


def config_summary(settings: Settings) -> str:
    cache = (
        f"memcached {','.join(settings.memcached_servers)}"
        if settings.memcached_servers
        else "in-memory cache only"
    )
    upstream = settings.upstream_url or "built-in simulator"
    faults = "on" if settings.enable_fault_injection else "off"
    return (
        f"configuration ok: listen {settings.app_host}:{settings.app_port}, {cache}, "
        f"upstream {upstream}, fault injection {faults}"
    )


def settings_from_command_line(argv: Sequence[str] | None = None) -> Settings:
    """Settings from the environment with the command line's overrides. Exits after `--help`,
    `--version` and `--check-config`, and with status 2 and the reason (no traceback) when the
    configuration is invalid, as argparse does for a bad option."""
    parser = build_parser()
    args = parser.parse_args(argv)
    overrides = {
        name: value
        for name, value in (("app_host", args.host), ("app_port", args.port))
        if value is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        print(f"market-api: invalid configuration: {_errors(exc)}", file=sys.stderr)
        raise SystemExit(2) from None
    if args.check_config:
        print(config_summary(settings))
        raise SystemExit(0)
    return settings


def _errors(exc: ValidationError) -> str:
    """Each problem as `VARIABLE: message` (the environment variable names the field)."""
    parts = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]).upper()
        parts.append(f"{field}: {error['msg']}" if field else error["msg"])
    return "; ".join(parts)


# --- server ------------------------------------------------------------------------------------


def server_config(app: FastAPI, settings: Settings) -> uvicorn.Config:
    """How uvicorn serves the app: the same for `market-api` and the tests that attack it."""
    return uvicorn.Config(
        app,
        host=settings.app_host,
        port=settings.app_port,
        log_level=settings.log_level.lower(),
        lifespan="on",
        # httptools with a bounded request head (size and time): see app/http_limits.py.
        http=limited_http_protocol(settings.http_max_header_bytes, settings.http_header_timeout),
        # Past this many open connections or requests in flight, uvicorn answers 503 instead of
        # taking on more work.
        limit_concurrency=settings.http_max_concurrency,
        # Oversized client frames are refused by the protocol layer (close 1009) before the app
        # ever buffers them; the app checks the same limit for servers that do not.
        ws_max_size=settings.ws_max_message_bytes,
        # Compression would deflate every broadcast once per subscriber (the frame is serialized
        # once for all of them) and keep a compressor of tens of kilobytes per socket.
        ws_per_message_deflate=False,
        # X-Forwarded-For/-Proto rewrite the request's client and scheme only when the
        # connection comes from a configured proxy. uvicorn's own default trusts 127.0.0.1,
        # where any local client could claim any address; empty FORWARDED_ALLOW_IPS turns the
        # headers off (and their middleware with them).
        proxy_headers=bool(settings.forwarded_allow_ips),
        forwarded_allow_ips=list(settings.forwarded_allow_ips),
    )


def main(argv: Sequence[str] | None = None) -> None:
    settings = settings_from_command_line(argv)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from app.main import app  # built on import: after logging is configured

    config = server_config(app, settings)
    # Closes the app's WebSockets with 1001 before uvicorn closes them with 1012.
    try:
        GracefulServer(config, app).run()
    except KeyboardInterrupt:
        # uvicorn re-raises Ctrl-C once its shutdown is complete; the log already says so.
        raise SystemExit(130) from None
