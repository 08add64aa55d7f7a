"""A real Alertmanager with the committed configuration, and a small client of its v2 API."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import httpx

from devstack.alertmanager import alertmanager_process, write_alertmanager_config

T = TypeVar("T")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


class AlertmanagerApi:
    def __init__(self, base_url: str) -> None:
        self.client = httpx.Client(base_url=base_url, timeout=5.0)

    def fire(self, labels: dict[str, str], annotations: dict[str, str] | None = None) -> None:
        """Post an alert that is active for the next ten minutes (as Prometheus resends it)."""
        now = datetime.now(UTC)
        self._post(
            labels, annotations or {}, now - timedelta(seconds=30), now + timedelta(minutes=10)
        )

    def resolve(self, labels: dict[str, str]) -> None:
        """Post the same alert with an end in the past, as Prometheus does once it clears."""
        now = datetime.now(UTC)
        self._post(labels, {}, now - timedelta(seconds=30), now - timedelta(seconds=1))

    def _post(
        self, labels: dict[str, str], annotations: dict[str, str], starts: datetime, ends: datetime
    ) -> None:
        alert = {
            "labels": labels,
            "annotations": annotations,
            "startsAt": iso(starts),
            "endsAt": iso(ends),
            "generatorURL": "http://127.0.0.1:9090/graph",
        }
        self.client.post("/api/v2/alerts", json=[alert]).raise_for_status()

    def alerts(self, **labels: str) -> list[dict[str, Any]]:
        """Active alerts (silenced and inhibited included) whose labels match `labels`."""
        params = httpx.QueryParams([("filter", f'{k}="{v}"') for k, v in labels.items()])
        response = self.client.get("/api/v2/alerts", params=params)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()
        return found

    def alert(self, **labels: str) -> dict[str, Any] | None:
        """The one alert matching `labels` once Alertmanager has processed it, else None."""
        found = [a for a in self.alerts(**labels) if a["status"]["state"] != "unprocessed"]
        assert len(found) <= 1, found
        return found[0] if found else None

    def close(self) -> None:
        self.client.close()


def wait_for(probe: Callable[[], T | None], what: str, timeout: float = 20.0) -> T:
    """Poll `probe` until it returns something other than None (a generous liveness bound)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


@contextmanager
def running_alertmanager(webhook_url: str) -> Iterator[AlertmanagerApi]:
    """The committed configuration with its webhook pointed at `webhook_url`."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config = write_alertmanager_config(root / "alertmanager.yml", webhook_url)
        process = alertmanager_process(config, root / "data", log_path=root / "alertmanager.log")
        with process:
            api = AlertmanagerApi(process.url)
            try:
                yield api
            finally:
                api.close()
