"""Cached answers sent as their stored bytes, before routing for requests validated before.

A dashboard polls the same few URLs many times a second. The route handlers read the cached JSON
bytes and send them as they are (no decode and re-encode), with an `ETag` and a `Cache-Control:
max-age` of the time this instance will keep serving them, and answer `If-None-Match` with 304.

The middleware in front of routing goes further for a request whose exact path and query string
a route has already validated and answered from a cache entry: it serves the entry straight from
the in-process tier (near-cache, or the memory store), skipping routing, dependency resolution
and parameter validation, which cost several times the cache lookup. The outcome cannot differ:

- Only a (path, query string) pair a route answered with 200 is remembered, with the entry it
  read; validation depends on nothing else, so the same pair validates the same way again. An
  invalid parameter never gets there and still reaches FastAPI's 422.
- The headers are built by the same function on both paths, and `scope["route"]` is set to the
  route, so telemetry records the request under the same `http.route` template.
- The hit is counted by the cache manager like any `get` hit of its tier, and the request is
  measured and traced like any other; the lookup itself is not timed (one dict read) and the
  tier it came from goes on the request's server span instead of a child span. When the entry is
  not in the in-process tier nothing is recorded and the request takes the normal path, whose
  lookup is recorded once.

Everything here is bounded: the remembered pairs (LRU), the rendered bodies (LRU, by count and
bytes).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Any, Final, NamedTuple

import orjson
from fastapi.responses import Response
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

from app.cache.instrumentation import SERVED_TIER_SCOPE_KEY
from app.cache.manager import CacheEntry, CacheManager
from app.cache.serialization import CacheDecodeError, decode
from app.cache.source import CachedSource

MAX_AGE_CAP: Final = 86_400
"""Entries without expiry are announced for a day at most."""
MAX_REMEMBERED_BYTES: Final = 512
"""Longer paths and query strings are never remembered (the normal path still serves them)."""
JSON: Final = (b"content-type", b"application/json")

Headers = list[tuple[bytes, bytes]]


class CachedView(NamedTuple):
    """A cache entry served as an HTTP answer: the whole JSON value, or one member of it."""

    namespace: str
    key: str
    member: str | None = None


class Rendered(NamedTuple):
    body: bytes
    etag: bytes


class Answer(NamedTuple):
    status: int
    headers: Headers
    body: bytes


def etag_matches(if_none_match: bytes, etag: bytes) -> bool:
    """Weak comparison, as RFC 9110 asks for If-None-Match."""
    for candidate in if_none_match.split(b","):
        candidate = candidate.strip()
        if candidate == b"*" or candidate.removeprefix(b"W/") == etag:
            return True
    return False


def build_answer(rendered: Rendered, seconds_left: float, if_none_match: bytes | None) -> Answer:
    """Status, headers and body: the one definition both paths use."""
    max_age = int(min(seconds_left, MAX_AGE_CAP)) if seconds_left > 0 else 0
    cache_control = (b"cache-control", b"max-age=%d" % max_age)
    etag = (b"etag", rendered.etag)
    if if_none_match is not None and etag_matches(if_none_match, rendered.etag):
        return Answer(304, [etag, cache_control], b"")
    length = (b"content-length", b"%d" % len(rendered.body))
    return Answer(200, [length, JSON, etag, cache_control], rendered.body)


def if_none_match_of(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"if-none-match":
            return bytes(value)
    return None


class AnswerResponse(Response):
    """A prepared answer as a Starlette response (FastAPI sends it without touching it)."""

    def __init__(self, answer: Answer) -> None:
        self.status_code = answer.status
        self.body = answer.body
        self.background = None
        self.raw_headers = answer.headers


class ResponseCache:
    """Remembered validated requests, and bodies and ETags rendered once per stored payload."""

    def __init__(
        self, max_requests: int = 4096, max_rendered: int = 1024, max_bytes: int = 16 << 20
    ) -> None:
        self.max_requests = max_requests
        self.max_rendered = max_rendered
        self.max_bytes = max_bytes
        self.bytes_used = 0
        """Payloads and bodies the rendered memo keeps alive (a shared payload counts each time)."""
        self._requests: OrderedDict[tuple[str, bytes], tuple[CachedView, Any]] = OrderedDict()
        # view -> (payload object it was rendered from, rendered); identity, not equality:
        # the in-process tiers hand out the same bytes object until the entry changes.
        self._rendered: OrderedDict[CachedView, tuple[bytes, Rendered | None]] = OrderedDict()

    # ------------------------------------------------------------------ route side
    async def answer(
        self, conn: HTTPConnection, cache: CacheManager, source: CachedSource, member: str | None
    ) -> AnswerResponse | None:
        """The route's answer from the source's entry; None if `member` is not in it."""
        entry = await source.entry(cache)
        view = CachedView(source.namespace, source.key, member)
        rendered = self.render(view, entry.payload)
        if rendered is None:
            return None
        self.remember(conn.scope, view)
        return AnswerResponse(
            build_answer(rendered, entry.seconds_left, if_none_match_of(conn.scope))
        )

    def remember(self, scope: Scope, view: CachedView) -> None:
        """Record that this exact request validated and is answered by `view`."""
        path, query = scope["path"], scope["query_string"]
        if len(path) + len(query) > MAX_REMEMBERED_BYTES or "route" not in scope:
            return
        key = (path, bytes(query))
        self._requests[key] = (view, scope["route"])
        self._requests.move_to_end(key)
        if len(self._requests) > self.max_requests:
            self._requests.popitem(last=False)

    def render(self, view: CachedView, payload: bytes) -> Rendered | None:
        """Body and ETag for a payload, computed once per payload object."""
        memo = self._rendered.get(view)
        if memo is not None and memo[0] is payload:
            return memo[1]
        rendered = self._render(view, payload)
        if memo is not None:
            self.bytes_used -= self._size(memo)
        self._rendered[view] = (payload, rendered)
        self._rendered.move_to_end(view)
        self.bytes_used += self._size((payload, rendered))
        while self._rendered and (
            len(self._rendered) > self.max_rendered or self.bytes_used > self.max_bytes
        ):
            self.bytes_used -= self._size(self._rendered.popitem(last=False)[1])
        return rendered

    @staticmethod
    def _size(memo: tuple[bytes, Rendered | None]) -> int:
        payload, rendered = memo
        return len(payload) + (
            0 if rendered is None or rendered.body is payload else len(rendered.body)
        )

    @staticmethod
    def _render(view: CachedView, payload: bytes) -> Rendered | None:
        body = payload
        if view.member is not None:
            try:
                whole = decode(payload)
            except CacheDecodeError:
                return None
            if not isinstance(whole, dict) or view.member not in whole:
                return None
            body = orjson.dumps(whole[view.member])
        digest = hashlib.blake2b(body, digest_size=8).hexdigest()
        return Rendered(body, f'"{digest}"'.encode())

    # ------------------------------------------------------------------ front side
    def serve(self, scope: Scope, cache: CacheManager) -> tuple[Answer, Any] | None:
        """The answer and route for a remembered request whose entry is in process, or None."""
        known = self._requests.get((scope["path"], scope["query_string"]))
        if known is None:
            return None
        view, route = known

        def accept(entry: CacheEntry) -> Answer | None:
            rendered = self.render(view, entry.payload)
            if rendered is None:
                return None
            scope[SERVED_TIER_SCOPE_KEY] = entry.tier
            return build_answer(rendered, entry.seconds_left, if_none_match_of(scope))

        answer = cache.peek(view.namespace, view.key, accept)
        return None if answer is None else (answer, route)


class ResponseCacheMiddleware:
    """Plain ASGI, inside the telemetry middleware: a served hit is measured like any request."""

    def __init__(self, app: ASGIApp, responses: ResponseCache) -> None:
        self.app = app
        self.responses = responses

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            services = getattr(scope["app"].state, "services", None)
            served = self.responses.serve(scope, services.cache) if services is not None else None
            if served is not None:
                answer, scope["route"] = served
                await send(
                    {
                        "type": "http.response.start",
                        "status": answer.status,
                        "headers": answer.headers,
                    }
                )
                await send({"type": "http.response.body", "body": answer.body})
                return
        await self.app(scope, receive, send)
