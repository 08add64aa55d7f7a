from __future__ import annotations

import asyncio
import logging

import pytest

from app.ws.supervisor import Backoff, supervise


def test_backoff_doubles_up_to_its_cap_with_jitter_and_starts_over_after_a_reset() -> None:
    backoff = Backoff(0.1, 2.0)
    delays = [backoff.next() for _ in range(10)]
    ceilings = [min(2.0, 0.1 * 2**i) for i in range(10)]
    assert all(c / 2 <= d <= c for d, c in zip(delays, ceilings, strict=True))
    backoff.reset()
    assert 0.05 <= backoff.next() <= 0.1
    with pytest.raises(ValueError, match="first"):
        Backoff(0, 1)


async def test_a_failing_loop_runs_again_and_only_cancellation_ends_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    runs = 0
    done = asyncio.Event()

    async def body() -> None:
        nonlocal runs
        runs += 1
        if runs == 4:
            done.set()
            await asyncio.Event().wait()  # healthy from now on
        if runs % 2:
            raise ConnectionError("redis went away")
        # returning is a failure too: a loop that should run forever stopped

    caplog.set_level(logging.WARNING, "app.ws.supervisor")
    task = asyncio.create_task(supervise("test loop", body, Backoff(0.001, 0.002)))
    await asyncio.wait_for(done.wait(), 10)
    assert not task.done()
    task.cancel()
    await asyncio.wait([task])
    assert task.cancelled()
    assert runs == 4
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 1  # rate-limited: once a minute per loop
    assert "test loop stopped (ConnectionError('redis went away'))" in logged[0]
