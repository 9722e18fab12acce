"""The outbox relay: publishes committed `report.accepted` events to Kafka and marks them sent.

Kafka being down delays publication, never loses it: rows stay unsent and are retried. A crash between the
broker's acknowledgement and the `sent_at` update publishes a row twice; its event id is stable, so consumers
drop the copy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime

from services.intake import repository
from services.intake.metrics import OUTBOX_OLDEST_AGE, OUTBOX_PENDING, OUTBOX_PUBLISHED
from shared.db import SessionFactory, transaction
from shared.events import ReportAccepted
from shared.kafka import EventProducer

log = logging.getLogger(__name__)


class OutboxRelay:
    def __init__(self, *, sessions: SessionFactory, producer: EventProducer, batch_size: int,
                 idle_seconds: float) -> None:
        self._sessions = sessions
        self._producer = producer
        self._batch_size = batch_size
        self._idle_seconds = idle_seconds
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()

    def wake(self) -> None:
        """Called after a report is committed, so that it is published without waiting for the next poll."""
        self._wake.set()

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                published = await self.publish_batch()
                failures = 0
            except Exception as error:
                failures += 1
                delay = min(0.5 * 2**failures, 30.0)
                log.warning("outbox relay could not publish (%s); retrying in %.1f s", error, delay)
                await self._pause(delay)
                continue
            if published < self._batch_size:
                await self._pause(self._idle_seconds)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
        self._wake.clear()

    async def publish_batch(self) -> int:
        """Publish up to one batch of unsent rows; returns how many were published."""
        async with transaction(self._sessions) as session:
            rows = await repository.lock_unsent_outbox(session, self._batch_size)
            if rows:
                await self._producer.send_events(
                    [(row.topic, ReportAccepted.model_validate_json(row.payload)) for row in rows]
                )
                await repository.mark_sent(session, [row.id for row in rows], datetime.now(UTC))
                OUTBOX_PUBLISHED.inc(len(rows))
            pending, oldest = await repository.outbox_backlog(session)
        OUTBOX_PENDING.set(pending)
        OUTBOX_OLDEST_AGE.set((datetime.now(UTC) - oldest).total_seconds() if oldest else 0)
        return len(rows)

