"""The alerts consumer of `assessments.v1`: one transaction per batch, deduplicated by event id."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from services.alerts import service
from services.alerts.lifecycle import Policy
from shared.db import SessionFactory, transaction
from shared.events import ReportAssessed, utcnow
from shared.kafka import Incoming
from shared.logging import trace_context

log = logging.getLogger(__name__)


class AssessedHandler:
    def __init__(self, *, sessions: SessionFactory, policy: Policy, on_change: Callable[[], None]) -> None:
        self._sessions = sessions
        self._policy = policy
        self._on_change = on_change  # wakes the relay and the delivery worker

    async def __call__(self, batch: Sequence[Incoming]) -> None:
        changed: list[tuple[ReportAssessed, list[str]]] = []
        async with transaction(self._sessions) as session:
            for item in batch:
                if isinstance(item.event, ReportAssessed):
                    alert_ids = await service.handle_assessed(session, item.event, self._policy, utcnow())
                    changed.append((item.event, alert_ids))
        if any(alert_ids for _, alert_ids in changed):
            self._on_change()
        for event, alert_ids in changed:
            with trace_context(event.trace_id):
                log.info("assessment handled", extra={"report_id": event.report_id, "level": event.level.value,
                                                      "alert_ids": alert_ids})
