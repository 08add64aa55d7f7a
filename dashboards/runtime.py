"""Market API runtime: the process under the service.

Memory with the same linear projection the leak alert makes, CPU, file descriptors, threads,
event-loop lag and the telemetry pipeline's own losses. The app exports no garbage-collector
metrics (GC is tuned to stay off the request path, see docs/telemetry.md), so there is no GC
panel; long collections show up as event-loop lag.
"""

from __future__ import annotations

from grafana_foundation_sdk.models import dashboard as models

from dashboards import catalog, skeleton
from dashboards.links import dashboard_link
from dashboards.panels import query, time_series
from dashboards.promql import quantile, selector, sum_rate
from telemetry.thresholds import (
    LEAK_HORIZON_SECONDS,
    LEAK_WINDOW_SECONDS,
    MEMORY_HIGH,
    MEMORY_LEAK_SUSPECTED,
)

RSS = "process_memory_usage_bytes"
LOOP_LAG = "python_event_loop_lag_seconds"


def _prom_duration(seconds: int) -> str:
    """A PromQL range as the alert rules spell it: whole hours, else minutes, else seconds."""
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def build() -> models.Dashboard:
    window = _prom_duration(LEAK_WINDOW_SECONDS)
    horizon = _prom_duration(LEAK_HORIZON_SECONDS)
    dashboard = skeleton.new(
        catalog.RUNTIME,
        "Memory and its leak projection, CPU, file descriptors, threads, event-loop lag and "
        "telemetry losses of each market API process.",
    )
    dashboard = (
        dashboard.with_panel(
            time_series(
                "Resident memory and leak projection",
                f"RSS per instance, and where a straight line fitted over the last {window} "
                f"puts it {horizon} from each moment (`predict_linear`, the same window and "
                f"horizon as {MEMORY_LEAK_SUSPECTED.alert}). {MEMORY_HIGH.alert} fires "
                "when RSS stays above the dashed line; the leak alert when the projection "
                "crosses it while memory grows.",
                "bytes",
                [
                    query(f"max by (instance) ({selector(RSS)})", "RSS {{instance}}"),
                    query(
                        "max by (instance) "
                        f"(predict_linear({selector(RSS)}[{window}], {LEAK_HORIZON_SECONDS}))",
                        f"projected in {horizon} {{{{instance}}}}",
                    ),
                ],
                alerts=[MEMORY_HIGH, MEMORY_LEAK_SUSPECTED],
                links=[dashboard_link(*catalog.OVERVIEW)],
                size=(24, 9),
            )
        )
        .with_panel(
            time_series(
                "CPU utilization",
                "CPU time per wall time per available CPU since the previous reading, per "
                "instance (1 = every CPU the process may use is busy).",
                "percentunit",
                [
                    query(
                        f"max by (instance) ({selector('process_cpu_utilization')})", "{{instance}}"
                    )
                ],
            )
        )
        .with_panel(
            time_series(
                "CPU time by mode",
                "CPU seconds per second spent in user and system mode, per instance (1 = one "
                "core busy). Much system time points at I/O or syscalls.",
                "percentunit",
                [
                    query(
                        sum_rate(
                            "process_cpu_time_seconds_total", by_labels=("instance", "cpu_mode")
                        ),
                        "{{cpu_mode}} {{instance}}",
                    )
                ],
                stacked=True,
            )
        )
        .with_panel(
            time_series(
                "Open file descriptors",
                "File descriptors the process holds: sockets (clients, memcached, upstream) "
                "and files. Steady growth means connections are not closed.",
                "short",
                [
                    query(
                        f"max by (instance) ({selector('process_open_file_descriptor_count')})",
                        "{{instance}}",
                    )
                ],
            )
        )
        .with_panel(
            time_series(
                "Threads",
                "OS threads of the process: the event loop, the memcached call pool and the "
                "telemetry exporters. It should stay flat.",
                "short",
                [query(f"max by (instance) ({selector('process_thread_count')})", "{{instance}}")],
            )
        )
        .with_panel(
            time_series(
                "Event-loop lag",
                "How late a periodic timer on the event loop fired (p50, p99 and mean per "
                "instance): the time the loop was blocked by synchronous work or a long "
                "garbage collection. Every request on that instance waited as long.",
                "s",
                [
                    query(quantile(0.5, LOOP_LAG, by_labels=("instance",)), "p50 {{instance}}"),
                    query(quantile(0.99, LOOP_LAG, by_labels=("instance",)), "p99 {{instance}}"),
                    query(
                        f"{sum_rate(LOOP_LAG + '_sum', by_labels=('instance',))}\n/\n"
                        f"{sum_rate(LOOP_LAG + '_count', by_labels=('instance',))}",
                        "mean {{instance}}",
                    ),
                ],
            )
        )
        .with_panel(
            time_series(
                "Telemetry lost",
                "Spans and metric exports dropped per second by signal (a full export queue, "
                "traces waiting too long for their root), and failed export attempts. "
                "Non-zero means traces are missing in Tempo.",
                "cps",
                [
                    query(
                        sum_rate("telemetry_export_dropped_total", by_labels=("signal",)),
                        "dropped {{signal}}",
                    ),
                    query(
                        sum_rate("telemetry_export_failures_total", by_labels=("signal",)),
                        "failed exports {{signal}}",
                    ),
                ],
            )
        )
    )
    return skeleton.finish(dashboard)
