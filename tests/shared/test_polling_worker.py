"""`shared.runtime.PollingWorker`: a wake-up that finds the worker idle is served at once; only wake-ups that come
while a tick runs (a burst) wait for the linger, so that the burst is served by one tick."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from shared.runtime import PollingWorker

pytestmark = [pytest.mark.unit, pytest.mark.asyncio]

LINGER = 1.0  # long, so that "served at once" and "waited for it" cannot be confused on a busy box
POLL = 60.0  # never reached: every tick here comes from a wake-up


class Recorder(PollingWorker):
    def __init__(self, *, linger: float = LINGER, gather: float = 0.0) -> None:
        super().__init__(POLL, linger_seconds=linger, gather_seconds=gather)
        self.starts: list[float] = []
        self.ticked = asyncio.Event()
        self.inside: asyncio.Event | None = None  # set while a tick runs, when a test wants to wake it then
        self.release = asyncio.Event()

    async def tick(self) -> bool:
        self.starts.append(time.monotonic())
        self.ticked.set()
        if self.inside is not None:
            self.inside.set()
            await self.release.wait()
        return False


async def _next_tick(worker: Recorder, count: int) -> None:
    while len(worker.starts) < count:
        worker.ticked.clear()
        await asyncio.wait_for(worker.ticked.wait(), 10)


@asynccontextmanager
async def running(worker: Recorder) -> AsyncIterator[None]:
    """The worker runs inside the block; after it (even after a failed assertion) it stops."""
    task = asyncio.create_task(worker.run())
    try:
        yield
    finally:
        await worker.stop()
        await asyncio.wait_for(task, 10)


async def test_an_idle_worker_is_served_without_the_linger() -> None:
    worker = Recorder()
    async with running(worker):
        await _next_tick(worker, 1)  # the first tick at start-up
        await asyncio.sleep(0.05)  # now idle, waiting for a wake-up
        woken = time.monotonic()
        worker.wake()
        await _next_tick(worker, 2)
        # Served before the linger would have ended: the lone wake-up did not wait for it.
        assert worker.starts[1] - woken < LINGER


async def test_wake_ups_during_a_tick_wait_for_the_linger_and_share_one_tick() -> None:
    worker = Recorder()
    worker.inside = asyncio.Event()
    async with running(worker):
        await asyncio.wait_for(worker.inside.wait(), 10)  # the first tick is running
        worker.inside = None
        woken = time.monotonic()
        for _ in range(5):
            worker.wake()  # a burst of commits while it runs
        worker.release.set()
        await _next_tick(worker, 2)
        assert worker.starts[1] - woken >= LINGER
        await asyncio.sleep(LINGER * 2)
        assert len(worker.starts) == 2  # the five wake-ups were served by that one tick


async def test_with_a_gather_time_the_wake_ups_that_follow_an_idle_one_share_its_tick() -> None:
    worker = Recorder(linger=0.0, gather=LINGER)
    async with running(worker):
        await _next_tick(worker, 1)  # the first tick at start-up
        await asyncio.sleep(0.05)  # now idle
        for _ in range(3):  # three commits in a row, well within the gather time
            worker.wake()
            await asyncio.sleep(0.05)
        await _next_tick(worker, 2)
        await asyncio.sleep(0.2)
        assert len(worker.starts) == 2  # one tick served all three


async def test_a_stop_does_not_wait_for_the_gather_time() -> None:
    worker = Recorder(linger=0.0, gather=LINGER)
    task = asyncio.create_task(worker.run())
    await _next_tick(worker, 1)
    worker.wake()
    await asyncio.sleep(0.05)  # gathering now
    stopped = time.monotonic()
    await worker.stop()
    await asyncio.wait_for(task, 10)
    assert time.monotonic() - stopped < LINGER
