"""What the intake process holds while it runs: settings, database, Kafka producer, relay and consumer."""

from __future__ import annotations

from dataclasses import dataclass, field

from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake.ratelimit import RateLimiter
from services.intake.settings import IntakeSettings
from shared.db import SessionFactory
from shared.kafka import BatchConsumer, EventProducer
from shared.outbox import OutboxRelay
from shared.runtime import Workers


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
    workers: Workers = field(default_factory=Workers)
