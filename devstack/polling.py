"""Wait, with one deadline, for something another process makes true (a port, an HTTP answer).

Every readiness wait of the dev tooling is this loop; only the check and the words differ.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def poll_until(
    ready: Callable[[], bool],
    *,
    timeout: float,
    interval: float,
    waiting_for: Callable[[], str],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], object] = time.sleep,
) -> None:
    """Call `ready` every `interval` seconds until it returns True. Past `timeout` seconds, raise
    TimeoutError with `waiting_for()` (called then, so it can tell the last thing seen). `ready`
    may raise to give up early, e.g. when the awaited process has exited."""
    deadline = clock() + timeout
    while not ready():
        if clock() > deadline:
            raise TimeoutError(waiting_for())
        sleep(interval)
