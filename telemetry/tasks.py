"""Background-task failures as a metric: `background.task.errors` by task name.

`app.periodic.Periodic` counts the ticks that raised and carries on; this reads those counts at
collection time, so a failing task costs the app nothing extra and a dashboard shows which one
is failing. Task names are fixed strings in the code, so the `task` attribute stays bounded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from app.periodic import Periodic


def register_task_observers(meter: Meter, tasks: Callable[[], Iterable[Periodic]]) -> None:
    def errors(_: CallbackOptions) -> Iterable[Observation]:
        for task in tasks():
            yield Observation(task.errors, {"task": task.name})

    meter.create_observable_counter(
        "background.task.errors",
        [errors],
        unit="{error}",
        description="Ticks of a background task that raised (the task runs again at its next).",
    )
