"""On a real PostgreSQL: the pool without pre-ping still hands out live connections after the server dropped one, and
`NotificationListener` carries a replica's `notify()` to the others (not back to itself) and catches up on connect."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from sqlalchemy import text

from shared.db import create_engine
from shared.runtime import NotificationListener

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def test_a_connection_the_server_closed_is_replaced_at_checkout_without_an_error(database_url: str) -> None:
    engine = create_engine(database_url, pool_size=1)
    observer = create_engine(database_url, pool_size=1)
    try:
        async with engine.connect() as connection:
            backend = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        async with observer.connect() as other:
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        await asyncio.sleep(0.5)  # the FATAL message and EOF reach the pooled connection's event loop

        async with engine.connect() as connection:  # no pre-ping: the closed connection is discarded at checkout
            again = (await connection.execute(text("SELECT pg_backend_pid()"))).scalar_one()
        assert again != backend
    finally:
        await engine.dispose()
        await observer.dispose()


async def _until(condition: asyncio.Event, timeout: float = 10.0) -> None:
    await asyncio.wait_for(condition.wait(), timeout)


async def test_a_notify_wakes_the_other_replicas_and_not_the_sender(database_url: str) -> None:
    channel = f"test_{uuid.uuid4().hex[:8]}_outbox"
    woken = {"a": 0, "b": 0}
    b_woken = asyncio.Event()

    def wake_a() -> None:
        woken["a"] += 1

    def wake_b() -> None:
        woken["b"] += 1
        b_woken.set()

    a = NotificationListener(database_url, channel, wake_a)
    b = NotificationListener(database_url, channel, wake_b)
    tasks = [asyncio.create_task(a.run()), asyncio.create_task(b.run())]
    try:
        await _until(a.connected)
        await _until(b.connected)
        await _until(b_woken)  # the catch-up call on connecting
        assert woken == {"a": 1, "b": 1}
        b_woken.clear()

        for _ in range(5):  # folded into as few NOTIFYs as are needed, at least one after the last call
            a.notify()
        await _until(b_woken)
        await asyncio.sleep(0.3)
        assert woken["a"] == 1
        assert woken["b"] >= 2
    finally:
        await a.stop()
        await b.stop()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
