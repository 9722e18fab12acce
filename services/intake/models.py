"""Tables of the intake schema: units, reports, idempotency keys and the outbox (`shared.outbox.OutboxMixin`)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, ForeignKey, Index, LargeBinary, MetaData, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.outbox import OutboxMixin

SCHEMA = "intake"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


def _uuid() -> str:
    return str(uuid.uuid4())


class Unit(Base):
    """A reporting unit (基层工会 or other grassroots reporter) and the hash of its API key."""

    __tablename__ = "units"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    name: Mapped[str] = mapped_column(String(200))
    region_code: Mapped[str] = mapped_column(String(6))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Report(Base):
    """An accepted report: the publishable body, the encrypted contact, and the status learned from events."""

    __tablename__ = "reports"
    __table_args__ = (
        Index("ix_reports_unit_accepted", "unit_id", "accepted_at"),
        Index("ix_reports_accepted", "accepted_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"))
    kind: Mapped[str] = mapped_column(String(16))
    region_code: Mapped[str] = mapped_column(String(6))
    credit_code: Mapped[str] = mapped_column(String(18))
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    body: Mapped[dict[str, Any]] = mapped_column(JSONB)
    contact_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="accepted")
    assessment: Mapped[dict[str, Any] | None] = mapped_column(JSONB, nullable=True)
    alert_ids: Mapped[list[str]] = mapped_column(JSONB, default=list)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class IdempotencyKey(Base):
    """The first answer given for a unit's `Idempotency-Key`, and the hash of the body it answered."""

    __tablename__ = "idempotency_keys"

    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    report_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OutboxMessage(OutboxMixin, Base):
    """An event written in the same transaction as its report; the relay publishes it and marks it sent."""

    __tablename__ = "outbox"
