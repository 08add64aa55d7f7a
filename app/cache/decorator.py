"""`@cached`: memoize an async method through the owner's cache manager.

The manager is found on the instance (`self.cache`) at call time rather than in a module global,
so two apps in one process (tests) never share a cache.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

import orjson

from app.cache.manager import CacheManager

P = ParamSpec("P")
R = TypeVar("R")


def default_key(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    """`qualname:[args,kwargs]`; JSON keeps keys stable across processes (unlike repr/hash)."""
    try:
        params = orjson.dumps([args, kwargs], option=orjson.OPT_SORT_KEYS).decode()
    except TypeError:
        params = repr((args, sorted(kwargs.items())))
    return f"{fn.__qualname__}:{params}"


def cached(
    namespace: str,
    *,
    ttl: int | None = None,
    key: Callable[..., str] | None = None,
) -> Callable[
    [Callable[Concatenate[Any, P], Awaitable[R]]], Callable[Concatenate[Any, P], Awaitable[R]]
]:
    """Cache an async method's result in `namespace` for `ttl` seconds (namespace default if None).

    `key(*args, **kwargs)` builds the cache key from the call's arguments (without `self`);
    by default the qualified name and the JSON of the arguments. Results must be JSON values and
    come back as JSON values (lists, dicts...) on hits and misses alike.
    """

    def decorate(
        fn: Callable[Concatenate[Any, P], Awaitable[R]],
    ) -> Callable[Concatenate[Any, P], Awaitable[R]]:
        @functools.wraps(fn)
        async def wrapper(self: Any, /, *args: P.args, **kwargs: P.kwargs) -> R:
            manager: CacheManager = self.cache
            cache_key = key(*args, **kwargs) if key is not None else default_key(fn, args, kwargs)

            async def load() -> R:
                return await fn(self, *args, **kwargs)

            result: R = await manager.get_or_set(namespace, cache_key, load, ttl)
            return result

        return wrapper

    return decorate
