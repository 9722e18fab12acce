"""Intake's outbox relay: publishes committed `report.accepted` events to `reports.v1` and the screening events to
their topic (see shared.outbox), as they are stored: no event model is rebuilt per row (`event_key`)."""

from __future__ import annotations

import json
from typing import Any

from services.intake.metrics import OUTBOX_OLDEST_AGE, OUTBOX_PENDING, OUTBOX_PUBLISHED
from services.intake.models import OutboxMessage
from shared.db import SessionFactory
from shared.events import parse_event
from shared.kafka import EventProducer
from shared.outbox import OutboxRelay


def _backlog(pending: int, oldest_age: float) -> None:
    OUTBOX_PENDING.set(pending)
    OUTBOX_OLDEST_AGE.set(oldest_age)


def event_key(event: dict[str, Any]) -> str:
    """The Kafka key of an event of intake's outbox from its JSON, as its model's `key` gives it: the enterprise's
    credit code for `report.accepted` (one enterprise stays in order), the county for screening events. Any other
    type is parsed into its model (slow, but always the model's own answer)."""
    event_type = event.get("event_type", "")
    if event_type == "report.accepted":
        return str(event["report"]["enterprise"]["credit_code"])
    if event_type.startswith("screening."):
        return str(event["county"])
    return parse_event(json.dumps(event).encode()).key


def intake_relay(*, sessions: SessionFactory, producer: EventProducer, batch_size: int,
                 idle_seconds: float, linger_seconds: float = 0.0, source: str = "intake") -> OutboxRelay:
    """`source` is the producer's client id (the `ce_source` header), the service name."""
    return OutboxRelay(sessions=sessions, producer=producer, model=OutboxMessage, batch_size=batch_size,
                       idle_seconds=idle_seconds, on_published=OUTBOX_PUBLISHED.inc, on_backlog=_backlog,
                       linger_seconds=linger_seconds, key_of=event_key, source=source)
