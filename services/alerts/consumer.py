"""The alerts consumers: `assessments.v1` (alerts) and `screening.v1` (screening coverage and due notices); one
transaction per batch, deduplicated by event id. Assessments are handled set-based: a fixed number of statements
per batch, whatever its size."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from services.alerts import service
from services.alerts.lifecycle import Policy
from services.alerts.metrics import ASSESSED_TO_ALERT, REPORT_TO_ASSESSED
from shared.db import SessionFactory, transaction
from shared.events import (
    ReportAssessed,
    ScreeningEvent,
    ScreeningReturnSubmitted,
    ScreeningRoundDue,
    ScreeningRoundOpened,
    utcnow,
)
from shared.kafka import Incoming
from shared.logging import trace_context

log = logging.getLogger(__name__)


class AssessedHandler:
    def __init__(self, *, sessions: SessionFactory, policy: Policy, on_change: Callable[[], None]) -> None:
        self._sessions = sessions
        self._policy = policy
        self._on_change = on_change  # wakes the relay and the delivery worker, here and on the other replicas

    async def __call__(self, batch: Sequence[Incoming]) -> None:
        """The whole batch in one transaction with a fixed number of statements (`service.handle_assessed_batch`),
        then one wake-up of the relay and the delivery worker."""
        events = [item.event for item in batch if isinstance(item.event, ReportAssessed)]
        if not events:
            return
        async with transaction(self._sessions) as session:
            changed = await service.handle_assessed_batch(session, events, self._policy, utcnow())
        if any(alert_ids for _, alert_ids in changed):
            self._on_change()  # after the commit: this process's workers, and the other replicas' (NOTIFY)
        _observe_stages(changed)
        for event, alert_ids in changed:
            with trace_context(event.trace_id):
                log.info("assessment handled", extra={"report_id": event.report_id, "level": event.level.value,
                                                      "alert_ids": alert_ids})


class ScreeningHandler:
    """The alerts consumer of `screening.v1` (its own consumer group, beside the assessments one): coverage per
    (round, county), and the due notice to the county federation. One transaction per batch; deduplicated by event
    id like assessments."""

    def __init__(self, *, sessions: SessionFactory, policy: Policy, on_notice: Callable[[], None]) -> None:
        self._sessions = sessions
        self._policy = policy
        self._on_notice = on_notice  # wakes the delivery worker

    async def __call__(self, batch: Sequence[Incoming]) -> None:
        queued: list[ScreeningEvent] = []
        async with transaction(self._sessions) as session:
            for item in batch:
                event = item.event
                if isinstance(event, ScreeningRoundOpened | ScreeningReturnSubmitted | ScreeningRoundDue):
                    if await service.handle_screening(session, event, self._policy, utcnow()):
                        queued.append(event)
        if queued:
            self._on_notice()
        for event in queued:
            with trace_context(event.trace_id):
                log.info("screening due notice queued", extra={"round_id": event.round_id, "county": event.county})


def _observe_stages(changed: Sequence[tuple[ReportAssessed, list[str]]]) -> None:
    """The pipeline's stages up to here, from the times the event carries: acceptance → assessment (intake, Kafka,
    risk) for every live assessment, assessment → alert committed for those that changed an alert. (A redelivered
    event is observed again: rare, and it did take that long.)"""
    committed = utcnow()
    for event, alert_ids in changed:
        if event.replay:
            continue
        REPORT_TO_ASSESSED.observe(max((event.assessed_at - event.accepted_at).total_seconds(), 0.0))
        if alert_ids:
            ASSESSED_TO_ALERT.observe(max((committed - event.assessed_at).total_seconds(), 0.0))
