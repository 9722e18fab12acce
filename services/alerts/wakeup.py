"""Wake-ups across replicas: a PostgreSQL LISTEN on the channel that commits queuing deliveries or outbox rows
NOTIFY (`service.announce_work`), so that every replica's delivery worker and outbox relay start at once instead
of at their next poll.

A dedicated asyncpg connection (outside the pool: LISTEN lives as long as its connection). When it drops, it is
re-opened with backoff and everything is woken once, since notifications sent meanwhile are lost; the workers'
polls remain the safety net either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence

import asyncpg
from sqlalchemy.engine import make_url

from services.alerts.repository import WAKE_CHANNEL

log = logging.getLogger(__name__)


class WakeListener:
    """LISTENs on `channel` and calls every `on_wake` for each notification (and after each reconnect)."""

    def __init__(self, database_url: str, on_wake: Sequence[Callable[[], None]], *, channel: str = WAKE_CHANNEL,
                 check_seconds: float = 2.0) -> None:
        self._dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._on_wake = tuple(on_wake)
        self._channel = channel
        self._check_seconds = check_seconds
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        delay = 0.5
        while not self._stopping.is_set():
            try:
                connection = await asyncpg.connect(self._dsn, timeout=5)
            except Exception as error:
                log.warning("wake listener cannot connect (%s); retrying in %.1f s", error, delay)
                await self._sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.5
            try:
                await connection.add_listener(self._channel, self._notified)
                self._wake_all()  # anything committed while we were not listening
                while not self._stopping.is_set() and not connection.is_closed():
                    await self._sleep(self._check_seconds)
                    if not connection.is_closed():
                        await connection.execute("SELECT 1", timeout=5)  # notices a dead link
            except Exception as error:
                log.warning("wake listener lost its connection (%s); reconnecting", error)
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(connection.close(), 2)

    async def stop(self) -> None:
        self._stopping.set()

    def _notified(self, connection: object, pid: int, channel: str, payload: str) -> None:
        self._wake_all()

    def _wake_all(self) -> None:
        for wake in self._on_wake:
            wake()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)
