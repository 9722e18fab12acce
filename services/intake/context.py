"""What the intake process holds while it runs: settings, database, Kafka producer, relay and consumer."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.ratelimit import RateLimiter
from services.intake.settings import IntakeSettings
from services.intake.writer import GroupCommitWriter
from shared.db import SessionFactory
from shared.kafka import BatchConsumer, EventProducer
from shared.outbox import OutboxRelay
from shared.runtime import NotificationListener, Workers


@dataclass
class IntakeContext:
    settings: IntakeSettings
    engine: AsyncEngine
    sessions: SessionFactory
    producer: EventProducer
    relay: OutboxRelay
    status_consumer: BatchConsumer
    cipher: Fernet
    rate_limiter: RateLimiter
    # LISTEN/NOTIFY on `intake_outbox`: wakes this relay when another replica's relay stood by (we hold the lock);
    # ours notifies when it stands by itself (`OutboxRelay.on_standby`).
    outbox_listener: NotificationListener
    # Stores submissions in groups (one transaction for the reports that arrive together): `services.intake.writer`.
    writer: GroupCommitWriter
    workers: Workers = field(default_factory=Workers)

    def outbox_committed(self) -> None:
        """Outbox rows were just committed: publish them now (this process's relay; it tells the others when it
        stands by)."""
        self.relay.wake()
