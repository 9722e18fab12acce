"""The alerts consumers: `assessments.v1` (alerts) and `screening.v1` (screening coverage and due notices); one
transaction per batch, deduplicated by event id. Assessments are handled set-based: a fixed number of statements
per batch, whatever its size."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Protocol

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


class Sender(Protocol):
    """The delivery worker of this process, seen from the consumer: it takes new deliveries straight after the
    commit that created them (`service.SendLease`)."""

    def lease(self, now: datetime) -> service.SendLease | None: ...

    def take(self, claimed: Sequence[service.Claimed]) -> None: ...


class AssessedHandler:
    def __init__(self, *, sessions: SessionFactory, policy: Policy, on_change: Callable[[bool], None],
                 sender: Sender | None = None) -> None:
        self._sessions = sessions
        self._policy = policy
        # Wakes the relay, the delivery worker (when given True: deliveries are left for its claim) and the other
        # replicas (NOTIFY).
        self._on_change = on_change
        self._sender = sender  # None: the sender is another process, which claims every delivery

    async def __call__(self, batch: Sequence[Incoming]) -> None:
        """The whole batch in one transaction with a fixed number of statements (`service.handle_assessed_batch`),
        then the new deliveries handed to this process's sender and one wake-up of the relay (and of the claim
        loop, for deliveries the sender had no room for)."""
        events = [item.event for item in batch if isinstance(item.event, ReportAssessed)]
        if not events:
            return
        now = utcnow()
        lease = self._sender.lease(now) if self._sender is not None else None
        async with transaction(self._sessions) as session:
            changed = await service.handle_assessed_batch(session, events, self._policy, now, lease)
        if lease is not None and lease.claimed:
            assert self._sender is not None
            self._sender.take(lease.claimed)  # after the commit: what is sent is stored
        if any(alert_ids for _, alert_ids in changed):
            # After the commit: this process's workers, and the other replicas' (NOTIFY).
            self._on_change(lease is None or lease.left > 0)
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
