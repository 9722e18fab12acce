"""What the risk process holds while it runs."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncEngine

from services.risk.scoring.rubric import Rubric
from services.risk.settings import RiskSettings
from shared.db import SessionFactory
from shared.kafka import BatchConsumer, EventProducer
from shared.runtime import Workers


@dataclass
class RiskContext:
    settings: RiskSettings
    rubric: Rubric
    engine: AsyncEngine
    sessions: SessionFactory
    producer: EventProducer
    consumer: BatchConsumer
    workers: Workers = field(default_factory=Workers)
