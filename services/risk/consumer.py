"""The risk consumer: `reports.v1` (score) and `alerts.v1` (alert states for C17), then `assessments.v1`.

A batch costs one statement per step and no transaction around them (see `_autocommit`): the alert states (one
upsert), what scoring needs (one read), the new assessments (one insert). The assessments are published after the
insert and before the offsets are committed. A crash in between re-reads the batch: the stored assessments are
found by report id and published again with their original event ids, so nothing is lost and nothing is scored
twice.

The publishing is the handler's `Finish`: the risk consumer is pipelined (`BatchConsumer(pipelined=True)`), so a
batch is published, and its offsets committed, while the next one is scored and stored.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from services.risk import service
from services.risk.scoring.rubric import Rubric
from shared.db import SessionFactory
from shared.events import AlertChanged, ReportAccepted, Topic, utcnow
from shared.kafka import EventProducer, Finish, Incoming

log = logging.getLogger(__name__)


class AssessmentHandler:
    def __init__(self, *, sessions: SessionFactory, producer: EventProducer, rubric: Rubric) -> None:
        self._sessions = sessions
        self._producer = producer
        self._rubric = rubric

    async def __call__(self, batch: Sequence[Incoming]) -> Finish | None:
        """Assess and store the batch (a statement per step, each committed); returns what publishes the
        assessments."""
        reports = [item.event for item in batch if isinstance(item.event, ReportAccepted)]
        alerts = [item.event for item in batch if isinstance(item.event, AlertChanged)]
        async with _autocommit(self._sessions) as session:
            # Alert states first: the topics are not ordered against each other, and an alert known now counts.
            if alerts:
                await service.record_alerts(session, alerts)
            assessed = await service.assess_batch(session, self._rubric, reports, utcnow()) if reports else []
        if not assessed:
            return None

        async def publish() -> None:
            # The JSON stored with each assessment is what goes out: no second serialisation.
            topic = Topic.assessments.value
            await self._producer.send_encoded([(topic, item.event, item.json) for item in assessed])
            for item in assessed:
                event = item.event
                # `trace_id` in the record itself: the same line as under `trace_context`, without a context
                # switch.
                log.info("report assessed", extra={"trace_id": event.trace_id, "report_id": event.report_id,
                                                   "score": event.score, "level": event.level.value})

        return publish


@asynccontextmanager
async def _autocommit(sessions: SessionFactory) -> AsyncIterator[AsyncSession]:
    """A session whose statements each commit on their own: no BEGIN and COMMIT, two round trips of the four a
    lone report cost in a transaction (each round trip wakes both processes up: that is the cost at a trickle).

    Nothing needs the steps of a batch to commit together: each is one statement (atomic on its own) and idempotent,
    so a batch that fails half-way is retried (or isolated message by message) from the same offsets and redoes
    what was done with the same outcome: alert states keep the latest of each alert (`updated_at`), a report stored
    before is found by its id and its stored event published again (`ON CONFLICT DO NOTHING` if another worker
    stores it meanwhile). The read is one statement, so it sees one snapshot, as one statement in a transaction
    at READ COMMITTED does, and it sees the alert states upserted before it.
    """
    async with sessions() as session:
        await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
        yield session
        await session.commit()  # flushes whatever is pending; the server has nothing left to commit
