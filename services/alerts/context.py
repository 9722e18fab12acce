"""What the alerts process holds while it runs."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from services.alerts.lifecycle import Policy
from services.alerts.sender import DeliverySender
from services.alerts.settings import AlertsSettings
from shared.db import SessionFactory
from shared.kafka import EventProducer
from shared.outbox import OutboxRelay
from shared.runtime import Workers


@dataclass
class AlertsContext:
    settings: AlertsSettings
    policy: Policy
    engine: AsyncEngine
    sessions: SessionFactory
    producer: EventProducer
    relay: OutboxRelay
    sender: DeliverySender | None = None  # the delivery sender process (ALERTS_DELIVERY_PROCESS)
    workers: Workers = field(default_factory=Workers)
