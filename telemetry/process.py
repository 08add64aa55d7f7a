"""Process health: RSS, CPU, file descriptors, threads, and event-loop lag.

Event-loop lag is the metric that exposes blocking calls: a timer that should fire every
`interval` seconds fires late by exactly as long as something held the loop.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterable

import psutil
from opentelemetry.metrics import CallbackOptions, Histogram, Meter, Observation

from app.periodic import Periodic


class ProcessSampler:
    """psutil readings shared by the observers and the monitoring API."""

    def __init__(self) -> None:
        self._process = psutil.Process(os.getpid())
        self._cpus = len(self._process.cpu_affinity() or []) or os.cpu_count() or 1
        self._last_cpu = self._cpu_seconds()
        self._last_wall = time.monotonic()
        self._utilization = 0.0

    def _cpu_seconds(self) -> float:
        times = self._process.cpu_times()
        return float(times.user + times.system)

    def rss_bytes(self) -> int:
        return int(self._process.memory_info().rss)

    def cpu_utilization(self) -> float:
        """CPU time since the previous reading / wall time / CPUs available (semconv)."""
        now, cpu = time.monotonic(), self._cpu_seconds()
        wall = now - self._last_wall
        if wall >= 0.05:
            self._utilization = (cpu - self._last_cpu) / wall / self._cpus
            self._last_cpu, self._last_wall = cpu, now
        return max(0.0, self._utilization)

    def cpu_times(self) -> tuple[float, float]:
        times = self._process.cpu_times()
        return float(times.user), float(times.system)

    def open_fds(self) -> int:
        return int(self._process.num_fds())

    def threads(self) -> int:
        return int(self._process.num_threads())


def register_process_observers(meter: Meter, sampler: ProcessSampler) -> None:
    def memory(_: CallbackOptions) -> Iterable[Observation]:
        yield Observation(sampler.rss_bytes())

    def cpu_utilization(_: CallbackOptions) -> Iterable[Observation]:
        yield Observation(sampler.cpu_utilization())

    def cpu_time(_: CallbackOptions) -> Iterable[Observation]:
        user, system = sampler.cpu_times()
        yield Observation(user, {"cpu.mode": "user"})
        yield Observation(system, {"cpu.mode": "system"})

    def fds(_: CallbackOptions) -> Iterable[Observation]:
        yield Observation(sampler.open_fds())

    def threads(_: CallbackOptions) -> Iterable[Observation]:
        yield Observation(sampler.threads())

    meter.create_observable_up_down_counter(
        "process.memory.usage", [memory], unit="By", description="Resident set size (RSS)."
    )
    meter.create_observable_gauge(
        "process.cpu.utilization",
        [cpu_utilization],
        unit="1",
        description="CPU time per wall time per available CPU since the last reading.",
    )
    meter.create_observable_counter(
        "process.cpu.time", [cpu_time], unit="s", description="CPU seconds by mode."
    )
    meter.create_observable_up_down_counter(
        "process.open_file_descriptor.count",
        [fds],
        unit="{file_descriptor}",
        description="Open file descriptors.",
    )
    meter.create_observable_up_down_counter(
        "process.thread.count", [threads], unit="{thread}", description="OS threads."
    )


class EventLoopLagMonitor:
    """Sleeps `interval` in a loop and records how late each wake-up was."""

    def __init__(self, histogram: Histogram, interval: float = 0.25, window: int = 240) -> None:
        self._histogram = histogram
        self.interval = interval
        self.recent: deque[float] = deque(maxlen=window)
        self._last = time.perf_counter()
        self._probe = Periodic("event-loop-lag", interval, self._tick)

    @property
    def task(self) -> Periodic:
        return self._probe

    @property
    def max_recent(self) -> float:
        return max(self.recent, default=0.0)

    def start(self) -> None:
        self._last = time.perf_counter()
        self._probe.start()

    async def stop(self) -> None:
        await self._probe.stop()

    def _tick(self) -> None:
        now = time.perf_counter()
        lag = max(0.0, now - self._last - self.interval)
        self._last = now
        self.recent.append(lag)
        self._histogram.record(lag)
