"""Intake's outbox relay: publishes committed `report.accepted` events to `reports.v1` (see shared.outbox)."""

from __future__ import annotations

from services.intake.metrics import OUTBOX_OLDEST_AGE, OUTBOX_PENDING, OUTBOX_PUBLISHED
from services.intake.models import OutboxMessage
from shared.db import SessionFactory
from shared.kafka import EventProducer
from shared.outbox import OutboxRelay


def _backlog(pending: int, oldest_age: float) -> None:
    OUTBOX_PENDING.set(pending)
    OUTBOX_OLDEST_AGE.set(oldest_age)


def intake_relay(*, sessions: SessionFactory, producer: EventProducer, batch_size: int,
                 idle_seconds: float, linger_seconds: float = 0.0) -> OutboxRelay:
    return OutboxRelay(sessions=sessions, producer=producer, model=OutboxMessage, batch_size=batch_size,
                       idle_seconds=idle_seconds, on_published=OUTBOX_PUBLISHED.inc, on_backlog=_backlog,
                       linger_seconds=linger_seconds)
