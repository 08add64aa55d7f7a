"""A small synchronous client of Prometheus's HTTP API, for tools that run dashboard queries.

The preview renderer and the test that proves every panel has data both need the same three
things from a Prometheus: is it there at all, an instant query, a range query. Answers are parsed
from the API's documented JSON envelope (`status`, `data.resultType`, `data.result`) into plain
`Series`, whatever the result type: a scalar becomes one series without labels, so callers never
branch on it. A server that cannot be reached (or is not a Prometheus) raises
`PrometheusUnreachable`, which callers treat as fatal; a query Prometheus refuses raises
`PrometheusQueryError`, which is about that one query only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx
import orjson

BUILDINFO_PATH: Final = "/api/v1/status/buildinfo"
QUERY_PATH: Final = "/api/v1/query"
QUERY_RANGE_PATH: Final = "/api/v1/query_range"
MAX_POINTS: Final = 11_000
"""Prometheus refuses a range query of more points per series than this."""


class PrometheusUnreachable(Exception):
    """Nothing answers at the URL, or what answers does not speak Prometheus's API."""


class PrometheusQueryError(Exception):
    """Prometheus answered, and refused this query (bad PromQL, timeout, too many points)."""


@dataclass(frozen=True, slots=True)
class Series:
    """One series of a result; an instant result has one point per series."""

    labels: Mapping[str, str]
    timestamps: tuple[float, ...]
    values: tuple[float, ...]

    @property
    def last(self) -> float:
        return self.values[-1]


class PrometheusApi:
    """`base_url` is the server's root (`http://127.0.0.1:9090`); every call is bounded by
    `timeout` seconds."""

    def __init__(self, base_url: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> PrometheusApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check(self) -> str:
        """The server's version; raises PrometheusUnreachable when there is no Prometheus."""
        data = self._get(BUILDINFO_PATH, {})
        if not isinstance(data, dict) or "version" not in data:
            raise PrometheusUnreachable(f"{self.base_url} answers, but not as Prometheus does")
        return str(data["version"])

    def query(self, expr: str, at: float | None = None) -> list[Series]:
        params: dict[str, str] = {"query": expr}
        if at is not None:
            params["time"] = _number(at)
        return _parse_result(self._get(QUERY_PATH, params))

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        if step <= 0 or end < start:
            raise ValueError("a range query needs start <= end and a positive step")
        if (end - start) / step > MAX_POINTS:
            raise ValueError(f"more than {MAX_POINTS} points per series: use a larger step")
        params = {"query": expr, "start": _number(start), "end": _number(end), "step": f"{step}"}
        return _parse_result(self._get(QUERY_RANGE_PATH, params))

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        try:
            response = self._client.get(path, params=dict(params))
        except httpx.HTTPError as exc:
            raise PrometheusUnreachable(f"cannot reach {self.base_url}: {exc}") from None
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise PrometheusUnreachable(
                f"{self.base_url}{path} answered {response.status_code} without JSON: "
                "is this a Prometheus?"
            ) from None
        if not isinstance(body, dict) or body.get("status") not in ("success", "error"):
            raise PrometheusUnreachable(f"{self.base_url}{path} is not Prometheus's API")
        if body["status"] == "error":
            raise PrometheusQueryError(f"{body.get('errorType', 'error')}: {body.get('error')}")
        return body.get("data")


def _number(value: float) -> str:
    return f"{value:.3f}"


def _parse_result(data: Any) -> list[Series]:
    if not isinstance(data, dict):
        raise PrometheusUnreachable("a query answer without `data`")
    kind = data.get("resultType")
    result: Any = data.get("result")
    if kind == "vector":
        return [_series(item["metric"], [item["value"]]) for item in result]
    if kind == "matrix":
        return [_series(item["metric"], item["values"]) for item in result]
    if kind == "scalar":
        return [_series({}, [result])]
    raise PrometheusQueryError(f"a {kind!r} result is not a number series")


def _series(metric: Mapping[str, str], points: list[list[Any]]) -> Series:
    # Sample values are strings in the API ("NaN", "+Inf" included): float() reads them all.
    return Series(
        labels=dict(metric),
        timestamps=tuple(float(t) for t, _ in points),
        values=tuple(float(v) for _, v in points),
    )
