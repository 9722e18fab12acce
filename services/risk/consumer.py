"""The risk consumer: `reports.v1` (score) and `alerts.v1` (alert states for C17), then `assessments.v1`.

One database transaction per batch; the assessments are published after it commits and before the offsets are
committed. A crash in between re-reads the batch: the stored assessments are found by report id and published
again with their original event ids, so nothing is lost and nothing is scored twice.

The publishing is the handler's `Finish`: the risk consumer is pipelined (`BatchConsumer(pipelined=True)`), so a
batch is published, and its offsets committed, while the next one is scored and stored.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from services.risk import service
from services.risk.scoring.rubric import Rubric
from shared.db import SessionFactory, transaction
from shared.events import AlertChanged, ReportAccepted, Topic, utcnow
from shared.kafka import EventProducer, Finish, Incoming

log = logging.getLogger(__name__)


class AssessmentHandler:
    def __init__(self, *, sessions: SessionFactory, producer: EventProducer, rubric: Rubric) -> None:
        self._sessions = sessions
        self._producer = producer
        self._rubric = rubric

    async def __call__(self, batch: Sequence[Incoming]) -> Finish | None:
        """Assess and store the batch (one transaction); returns what publishes the assessments."""
        reports = [item.event for item in batch if isinstance(item.event, ReportAccepted)]
        alerts = [item.event for item in batch if isinstance(item.event, AlertChanged)]
        async with transaction(self._sessions) as session:
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
