"""Service configuration, read once from the environment.

Every knob lives here so that the README can document one place and tests can build an app with
explicit values instead of patching the environment.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """All configuration, with the defaults the service runs on when nothing is set."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore", frozen=True)

    # --- HTTP server -------------------------------------------------------------------------
    app_host: str = Field("127.0.0.1", description="Interface uvicorn binds to.")
    app_port: int = Field(8000, ge=0, le=65535, description="Port uvicorn binds to.")
    log_level: str = Field("info", description="Python and uvicorn log level.")
    gc_freeze: bool = Field(
        True,
        description="Move start-up objects out of the garbage collector's reach once started, "
        "so full collections stop pausing the event loop for tens of milliseconds.",
    )
    gc_gen0_threshold: int = Field(
        10_000,
        ge=0,
        description="Allocations between young-generation collections (CPython default 700; "
        "0 keeps it).",
    )
    http_max_header_bytes: int = Field(
        16 * 1024,
        ge=1024,
        le=1024 * 1024,
        description="Largest request head (request line and headers) read from a connection; a "
        "larger one is answered 431 and the connection closed, so no client makes the server "
        "buffer more than this per connection.",
    )
    http_header_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a client has to send a complete request head, from connecting or "
        "from the first byte of a later request on the same connection; then it is closed.",
    )
    http_max_concurrency: int = Field(
        2048,
        ge=2,
        description="Open connections (WebSockets included) or requests in flight beyond which "
        "uvicorn answers 503 (its limit_concurrency); must exceed WS_MAX_CONNECTIONS and stay "
        "below the process's file-descriptor limit.",
    )
    forwarded_allow_ips: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated addresses or networks (or *) of the reverse proxies whose "
        "X-Forwarded-For / X-Forwarded-Proto are believed; empty believes nobody, so a client "
        "that connects directly cannot choose the address and scheme the service records.",
    )

    # --- Cache -------------------------------------------------------------------------------
    memcached_servers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Comma-separated host:port list; empty means in-memory cache only.",
    )
    cache_key_prefix: str = Field(
        "market-api", pattern=r"^[A-Za-z0-9_.-]{0,32}$", description="Prefix of every cache key."
    )
    cache_default_ttl: int = Field(300, ge=1, description="TTL in seconds when none is given.")
    cache_connection_pool_min: int = Field(
        5, ge=0, description="Connections opened at start, per server."
    )
    cache_connection_pool_max: int = Field(
        20,
        ge=1,
        description="Connections, executor threads and in-flight memcached calls, per server.",
    )
    cache_cleanup_interval: float = Field(
        30.0, gt=0, description="Seconds between sweeps of expired in-memory entries."
    )
    memcached_connect_timeout: float = Field(0.05, gt=0, description="TCP connect timeout (s).")
    memcached_timeout: float = Field(0.05, gt=0, description="Read/write timeout per call (s).")
    memcached_dead_timeout: float = Field(
        10.0, gt=0, description="With several servers: seconds a failing server stays out."
    )
    cache_breaker_failures: int = Field(
        5, ge=1, description="Consecutive memcached failures that open the circuit breaker."
    )
    cache_breaker_cooldown: float = Field(
        5.0, gt=0, description="Seconds the breaker stays open before one probe is let through."
    )
    cache_memory_max_entries: int = Field(10_000, ge=1, description="In-memory cache entry cap.")
    cache_memory_max_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="In-memory cache size cap (keys + values)."
    )
    cache_max_item_bytes: int = Field(
        1_000_000, ge=1024, description="Largest serialized value that is cached at all."
    )
    cache_version_refresh: float = Field(
        1.0,
        ge=0,
        description="Seconds a namespace version read from the shared store is trusted locally.",
    )
    cache_near_max_entries: int = Field(
        1000,
        ge=0,
        description="Entries of the in-process near-cache in front of memcached (0 turns it off).",
    )
    cache_near_max_bytes: int = Field(
        16 * 1024 * 1024, ge=1024, description="Near-cache size cap (keys + values)."
    )
    market_ttl: int = Field(2, ge=1, description="TTL (s) of upstream ticker snapshots.")
    dashboard_ttl: int = Field(5, ge=1, description="TTL (s) of dashboard aggregates.")
    analysis_ttl: int = Field(30, ge=1, description="TTL (s) of regime analyses.")
    cache_lease_wait: float | None = Field(
        None,
        ge=0,
        description="With memcached: seconds a replica waits for another replica's load of the "
        "same missing key (polling memcached) before loading it itself. Unset: UPSTREAM_TIMEOUT "
        "+ 0.5; 0 turns cross-replica single-flight off (each replica loads its own misses).",
    )
    cache_lease_ttl: int = Field(
        3,
        ge=1,
        le=3600,
        description="Whole seconds the lease a loading replica holds in memcached lives, so a "
        "replica that dies mid-load blocks nobody's takeover past it.",
    )

    # --- Fleet (several replicas acting as one service) -----------------------------------
    redis_url: str = Field(
        "",
        pattern=r"^(rediss?://\S+)?$",
        description="Redis that carries broadcasts between replicas and elects the one replica "
        "that polls the market feed; empty (one replica) needs no Redis.",
    )
    fleet_lease_ttl: float = Field(
        3.0,
        ge=0.5,
        le=60,
        description="Seconds the market-feed publisher's lease in Redis lasts; renewed every "
        "third of it, so a publisher that dies is replaced within about 1.3 times this.",
    )
    fleet_key_prefix: str = Field(
        "market-api",
        pattern=r"^[A-Za-z0-9_.-]{1,32}$",
        description="Prefix of the fleet's Redis keys and broadcast channel: fleets sharing one "
        "Redis need different ones (pub/sub channels ignore the database number).",
    )

    # --- Upstream exchange -------------------------------------------------------------------
    upstream_url: str = Field(
        "", description="Base URL of an HTTP exchange API; empty means the built-in simulator."
    )
    upstream_timeout: float = Field(2.0, gt=0, description="Seconds before an upstream call fails.")
    upstream_symbols: int = Field(
        60, ge=5, le=1000, description="Simulator: number of symbols it quotes."
    )
    upstream_latency_ms: float = Field(20.0, ge=0, description="Simulator: base latency per call.")
    upstream_jitter_ms: float = Field(10.0, ge=0, description="Simulator: uniform extra latency.")
    upstream_error_rate: float = Field(
        0.0, ge=0, le=1, description="Simulator: fraction of calls that fail."
    )
    upstream_seed: int | None = Field(None, description="Simulator: random seed (reproducible).")

    # --- WebSocket (/ws/dashboard) -----------------------------------------------------------
    ws_idle_timeout: float = Field(
        300.0, gt=0, description="Seconds without a client frame (ping included) before closing."
    )
    ws_cleanup_interval: float = Field(
        30.0, gt=0, description="Seconds between sweeps for idle sockets and stuck clients."
    )
    ws_max_connections: int = Field(
        1000, ge=1, description="Open sockets; more are accepted and closed with 1013."
    )
    ws_max_subscriptions: int = Field(
        100, ge=1, le=10_000, description="Topics one socket may subscribe to."
    )
    ws_queue_size: int = Field(
        256, ge=1, le=100_000, description="Updates queued per socket; when full, oldest dropped."
    )
    ws_slow_consumer_timeout: float = Field(
        10.0, gt=0, description="Seconds a socket may keep dropping updates before 1013 closes it."
    )
    ws_max_message_bytes: int = Field(
        4096, ge=256, le=1_048_576, description="Largest client frame; larger ones close with 1009."
    )
    ws_max_invalid_messages: int = Field(
        5, ge=1, description="Invalid client frames (each answered with an error) before closing."
    )
    ws_feed_interval: float = Field(
        1.0, gt=0, description="Seconds between market-feed rounds (tickers, movers, overview)."
    )
    ws_close_timeout: float = Field(
        5.0,
        gt=0,
        description=(
            "Seconds from closing a socket until it is gone: one still open then (a client that"
            " does not read or answer the close) is reset, its unsent data dropped."
        ),
    )
    ws_shutdown_timeout: float = Field(
        5.0, gt=0, description="Seconds graceful shutdown may take to close every socket (1001)."
    )

    # --- Telemetry (standard OTEL_* variables are read by the SDK itself) ------------------
    trace_keep_slower_than_ms: float = Field(
        100.0, ge=0, description="Traces whose local root took longer are always exported."
    )
    trace_keep_ratio: float = Field(
        0.001, ge=0, le=1, description="Fraction of the other traces exported (by trace id)."
    )
    event_loop_lag_interval: float = Field(
        0.25, gt=0, description="Seconds between event-loop lag probes."
    )
    runbook_base_url: str = Field(
        "",
        pattern=r"^(https?://\S+)?$",
        description="Absolute URL of the runbooks document; /bottlenecks links each alert to "
        "<this URL>#<alert name in lower case>. Empty: the runbooks this app serves at "
        "/runbooks (docs/runbooks.md, shipped in the package).",
    )
    grafana_dashboard_url: str = Field(
        "http://127.0.0.1:3000/d/market-api/market-api-overview",
        description="Where GET /performance redirects: the overview dashboard on the Compose "
        "stack's Grafana (uid market-api).",
    )

    # --- Alerting (Alertmanager webhook) ---------------------------------------------------
    alert_webhook_token: SecretStr = Field(
        SecretStr(""),
        description="Bearer token Alertmanager must send to POST /api/alerts/webhook; "
        "empty accepts any caller.",
    )
    alert_history_size: int = Field(
        200, ge=1, le=10_000, description="Alert notifications kept for GET /api/alerts/recent."
    )
    alert_history_max_bytes: int = Field(
        8 * 1024 * 1024,
        ge=64 * 1024,
        le=1024 * 1024 * 1024,
        description="Serialized bytes of all kept alert notifications together: the oldest are "
        "dropped first, so the history and GET /api/alerts/recent stay within this size.",
    )
    alert_notification_max_bytes: int = Field(
        256 * 1024,
        ge=16 * 1024,
        le=16 * 1024 * 1024,
        description="Largest webhook body accepted (413 beyond); also the largest notification "
        "stored. Must not exceed ALERT_HISTORY_MAX_BYTES.",
    )

    # --- Fault injection (development and end-to-end tests only) ---------------------------
    enable_fault_injection: bool = Field(
        False,
        description="Serve GET/PUT/DELETE /api/admin/faults, which slow or break the upstream, "
        "force cache misses and hold memory on purpose; off, those paths answer 404.",
    )

    @field_validator("forwarded_allow_ips", mode="before")
    @classmethod
    def _parse_proxies(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("forwarded_allow_ips")
    @classmethod
    def _check_proxies(cls, value: list[str]) -> list[str]:
        for proxy in value:
            if proxy == "*":
                continue
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise ValueError(f"{proxy!r} is not an IP address, a network or *") from None
        return value

    @field_validator("memcached_servers", mode="before")
    @classmethod
    def _parse_servers(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("memcached_servers")
    @classmethod
    def _check_servers(cls, value: list[str]) -> list[str]:
        for server in value:
            host, sep, port = server.rpartition(":")
            if not sep or not host or not port.isdigit():
                raise ValueError(f"memcached server {server!r} is not host:port")
        return value

    @model_validator(mode="after")
    def _check_pool(self) -> Settings:
        if self.cache_connection_pool_min > self.cache_connection_pool_max:
            raise ValueError("CACHE_CONNECTION_POOL_MIN must not exceed CACHE_CONNECTION_POOL_MAX")
        return self

    @model_validator(mode="after")
    def _check_limits(self) -> Settings:
        if self.http_max_concurrency <= self.ws_max_connections:
            # Open WebSockets count towards uvicorn's limit: at the WebSocket cap, plain HTTP
            # requests would all be refused.
            raise ValueError("HTTP_MAX_CONCURRENCY must exceed WS_MAX_CONNECTIONS")
        if self.alert_notification_max_bytes > self.alert_history_max_bytes:
            raise ValueError("ALERT_NOTIFICATION_MAX_BYTES must not exceed ALERT_HISTORY_MAX_BYTES")
        return self
