"""ASGI middleware: a server span and the request-duration histogram for every HTTP request.

Written as plain ASGI rather than BaseHTTPMiddleware (no extra task per request) and reading the
matched route template from the scope after the app ran, so `http.route` is always a template
(`/api/market/tickers/{symbol}`), and every path that matched nothing shares one value.

Two layers. `TelemetryMiddleware`, outermost, times and counts every request and settles its
trace. `TraceRootMiddleware`, innermost (after the response cache, before routing), opens the
request's local root: only a request that reaches routing can have child spans or need the
trace context, so only those pay for a root and a context switch. A request answered before
routing (a response-cache hit, the hot path) gets its keep decision at the end
(`LocalRoots.judge`), and a span only if it is kept: slow, failed or sampled by ratio.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from random import random
from typing import TYPE_CHECKING, Final

from opentelemetry import propagate
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.cache.instrumentation import SERVED_TIER_SCOPE_KEY

if TYPE_CHECKING:
    from telemetry.histograms import FastHistogram
    from telemetry.roots import LocalRoots, RootScope

UNMATCHED_ROUTE: Final = "unmatched"
KNOWN_METHODS: Final = frozenset(
    {"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"}
)
_SERVER: Final = SpanKind.SERVER
# Scrapes are frequent and uninteresting as traces; they are still measured.
UNTRACED_PATHS: Final = frozenset({"/metrics"})
_START_KEY: Final = "market_api.request_start_ns"
"""Set by `TelemetryMiddleware` on a traced request: the root opened inside starts there."""
_ROOT_KEY: Final = "market_api.trace_root"
"""Set by `TraceRootMiddleware` when it opened the request's root."""


class _HeaderGetter(Getter[list[tuple[bytes, bytes]]]):
    def get(self, carrier: list[tuple[bytes, bytes]], key: str) -> list[str] | None:
        wanted = key.encode("latin-1")
        values = [v.decode("latin-1") for k, v in carrier if k == wanted]
        return values or None

    def keys(self, carrier: list[tuple[bytes, bytes]]) -> list[str]:
        return [k.decode("latin-1") for k, _ in carrier]


_GETTER = _HeaderGetter()


def _known_method(method: str) -> str:
    """The method as a bounded label value: any other string is `_OTHER`."""
    return method if method in KNOWN_METHODS else "_OTHER"


def _parent_context(headers: list[tuple[bytes, bytes]]) -> Context | None:
    for key, _ in headers:
        if key == b"traceparent":
            return propagate.extract(headers, getter=_GETTER)
    return None


class TelemetryMiddleware:
    """Added by the composition root with the pipeline's parts it records into; it registers
    nothing itself, so building it (Starlette does, lazily) has no side effect."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        roots: LocalRoots,
        http_duration: FastHistogram,
        active: dict[str, int],
    ) -> None:
        self.app = app
        self.roots = roots
        self.http_duration = http_duration
        self.active = active
        """In-flight requests by method, read by the `http.server.active_requests` observer."""
        self._attributes: dict[tuple[str, str, int], dict[str, AttributeValue]] = {}
        self._fast_threshold_ns, self._fast_ratio = roots.fast_drop_rule()
        self._keeper_stats = roots.keeper.stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in UNTRACED_PATHS:
            await self._untraced(scope, receive, send)
            return
        method = scope["method"]
        active = self.active
        try:
            active[method] += 1
        except KeyError:  # first of its method, or not a method at all
            method = _known_method(method)
            active[method] = active.get(method, 0) + 1
        status = 500

        # A plain function returning `send`'s awaitable, not a coroutine: one frame less per
        # message on every request.
        def send_with_status(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        start = scope[_START_KEY] = time.perf_counter_ns()
        try:
            await self.app(scope, receive, send_with_status)
        except BaseException as exc:
            active[method] -= 1
            key, attrs = self._key_and_attrs(scope, method, status)
            self._settle(scope, method, key, attrs, status, start, error=exc)
            raise
        active[method] -= 1
        route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
        key = (method, route, status)
        attrs = self._attributes.get(key) or self._new_attrs(key)
        ratio_kept: bool | None = None
        if _ROOT_KEY not in scope and status < 500:
            # The hot path, written out: answered before routing, fast, no incoming parent,
            # dropped by ratio (`LocalRoots.judge`'s rule, from `fast_drop_rule`).
            duration = time.perf_counter_ns() - start
            if duration <= self._fast_threshold_ns:
                for name, _ in scope["headers"]:
                    if name == b"traceparent":
                        break
                else:
                    if random() >= self._fast_ratio:
                        self._keeper_stats.dropped_traces += 1
                        self.http_duration.record(duration / 1e9, key, attrs)
                        return
                    ratio_kept = True
        self._settle(scope, method, key, attrs, status, start, ratio_kept)

    async def _untraced(self, scope: Scope, receive: Receive, send: Send) -> None:
        """WebSockets (their sessions have their own telemetry) pass through; scrapes are timed
        and counted, never traced."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = _known_method(scope["method"])
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        self.active[method] = self.active.get(method, 0) + 1
        start = time.perf_counter_ns()
        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self.active[method] -= 1
            key, attrs = self._key_and_attrs(scope, method, status)
            self.http_duration.record((time.perf_counter_ns() - start) / 1e9, key, attrs)

    def _settle(
        self,
        scope: Scope,
        method: str,
        key: tuple[str, str, int],
        attrs: dict[str, AttributeValue],
        status: int,
        start: int,
        ratio_kept: bool | None = None,
        error: BaseException | None = None,
    ) -> None:
        """Every ended request but a fast dropped served hit: its root settled and closed, or
        (answered before routing) judged now. `error` is what the app raised, if it did."""
        roots = self.roots
        failed = error is not None or status >= 500
        description = (
            type(error).__name__ if error is not None else f"HTTP {status}" if failed else None
        )
        root = scope.get(_ROOT_KEY)
        if root is None:
            parent = _parent_context(scope["headers"])
            duration, root = roots.judge(
                method, _SERVER, parent, start, failed, error, description, ratio_kept
            )
            if root is None:
                self.http_duration.record(duration, key, attrs)
                return
        elif error is not None:  # settled but still current: `close` below leaves it
            duration = roots.settle(root, True, error, description)
        else:
            duration = roots.finish(root, failed, description)
            if root.reason is None:  # dropped, and already closed by `finish`
                self.http_duration.record(duration, key, attrs)
                return
        self.http_duration.record(duration, key, attrs, root.context)
        roots.close(root, self._describer(root, scope, key, attrs))

    def _key_and_attrs(
        self, scope: Scope, method: str, status: int
    ) -> tuple[tuple[str, str, int], dict[str, AttributeValue]]:
        route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
        key = (method, route, status)
        return key, self._attributes.get(key) or self._new_attrs(key)

    @staticmethod
    def _describer(
        root: RootScope, scope: Scope, key: tuple[str, str, int], attrs: dict[str, AttributeValue]
    ) -> Callable[[], dict[str, AttributeValue]]:
        """Only for a kept trace: name and attributes of the server span."""
        method, route, status = key

        def describe() -> dict[str, AttributeValue]:
            if route != UNMATCHED_ROUTE:
                root.name = f"{method} {route}"
            return _span_attributes(scope, attrs, status)

        return describe

    def _new_attrs(self, key: tuple[str, str, int]) -> dict[str, AttributeValue]:
        method, route, status = key
        attrs: dict[str, AttributeValue] = {
            "http.request.method": method,
            "http.route": route,
            "http.response.status_code": status,
        }
        self._attributes[key] = attrs
        return attrs


class TraceRootMiddleware:
    """Innermost, before routing: opens the local root of a request `TelemetryMiddleware`
    traces, so deferred cache spans, upstream spans and exemplars below it have a parent. The
    root starts when the outer layer started timing; the outer layer settles and closes it."""

    def __init__(self, app: ASGIApp, *, roots: LocalRoots) -> None:
        self.app = app
        self.roots = roots

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        start = scope.get(_START_KEY) if scope["type"] == "http" else None
        if start is not None and _ROOT_KEY not in scope:
            method = _known_method(scope["method"])
            root = self.roots.open(method, _SERVER, _parent_context(scope["headers"]))
            root.start_perf_ns = start
            scope[_ROOT_KEY] = root
        await self.app(scope, receive, send)


def _span_attributes(
    scope: Scope, metric_attrs: dict[str, AttributeValue], status: int
) -> dict[str, AttributeValue]:
    """Built only for kept traces: the raw path is fine on a span, never on a metric."""
    attributes = {k: v for k, v in metric_attrs.items() if v != UNMATCHED_ROUTE}
    attributes["http.response.status_code"] = status
    attributes["url.path"] = scope["path"]
    attributes["url.scheme"] = scope.get("scheme", "http")
    if scope.get("query_string"):
        attributes["url.query"] = scope["query_string"].decode("latin-1")
    tier = scope.get(SERVED_TIER_SCOPE_KEY)
    if tier is not None:  # answered before routing from the in-process cache tier
        attributes["cache.result"] = "hit"
        attributes["cache.backend"] = tier
    client = scope.get("client")
    if client:
        attributes["client.address"] = client[0]
    server = scope.get("server")
    if server:
        attributes["server.address"], attributes["server.port"] = server[0], server[1]
    return attributes
