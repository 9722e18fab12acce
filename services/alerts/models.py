"""Tables of the alerts schema: bodies, alerts, who was notified, the delivery queue, escalations, the
consumed-event ledger (dedup by event id) and the outbox of `alerts.v1` events."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Index, Integer, MetaData, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.outbox import OutboxMixin

SCHEMA = "alerts"


class DeliveryState(StrEnum):
    """Where one delivery stands: waiting (or retrying), delivered, failed (refused for good by the receiver, or
    given up after the retry window), or cancelled (its body was deactivated or no longer has the channel)."""

    pending = "pending"
    delivered = "delivered"
    failed = "failed"
    cancelled = "cancelled"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class Body(Base):
    """A union federation, mediation centre, arbitration commission, labour inspectorate or legal aid centre."""

    __tablename__ = "bodies"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(16))
    region_code: Mapped[str] = mapped_column(String(6))
    channels: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Alert(Base):
    """One alert per (credit_code, kind) while unresolved. `ack_deadline` is the escalation timer: a row with a
    due time that the escalation worker picks up, so a restart loses no timer."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("uq_alerts_one_unresolved", "credit_code", "kind", unique=True,
              postgresql_where=text("state <> 'resolved'")),
        Index("ix_alerts_due", "ack_deadline", postgresql_where=text("state = 'open' AND NOT escalation_exhausted")),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    credit_code: Mapped[str] = mapped_column(String(18))
    kind: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16))
    report_ids: Mapped[list[str]] = mapped_column(JSONB)
    trace_id: Mapped[str] = mapped_column(String(64))
    enterprise_name: Mapped[str] = mapped_column(String(200))
    region_code: Mapped[str] = mapped_column(String(6))
    score: Mapped[int] = mapped_column(Integer)
    report: Mapped[dict[str, Any]] = mapped_column(JSONB, comment="the report behind the current level")
    assessment: Mapped[dict[str, Any]] = mapped_column(JSONB, comment="its assessment (score, level, reasons)")
    first_accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deadline_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True, comment="rubric's, unscaled")
    ack_deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    escalation_exhausted: Mapped[bool] = mapped_column(Boolean, default=False)
    highest_union_level: Mapped[str | None] = mapped_column(String(16), nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    first_delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Notification(Base):
    """A body told about an alert, and why (routing, level_raised, escalation)."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_body", "body_id", "alert_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"), index=True)
    body_id: Mapped[str] = mapped_column(ForeignKey("bodies.id"))
    reason: Mapped[str] = mapped_column(String(16))
    event_type: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Delivery(Base):
    """One message to one channel of one body: a durable queue row worked by the delivery worker."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_due", "next_attempt_at", postgresql_where=text("state = 'pending'")),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, comment="X-Delivery-Id, stable across retries")
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"), index=True)
    body_id: Mapped[str] = mapped_column(ForeignKey("bodies.id"))
    event_type: Mapped[str] = mapped_column(String(32))
    channel_type: Mapped[str] = mapped_column(String(16))
    # Kept without its secret, as a record: every send reads the body's channel as it is then (see channel_index).
    channel: Mapped[dict[str, Any]] = mapped_column(JSONB, comment="the channel as configured when queued")
    channel_index: Mapped[int | None] = mapped_column(Integer, nullable=True,
                                                      comment="position of the channel in the body's channels")
    payload: Mapped[str] = mapped_column(Text, comment="the exact JSON body, the same on every retry")
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.pending.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Escalation(Base):
    __tablename__ = "escalations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"), index=True)
    body_id: Mapped[str] = mapped_column(ForeignKey("bodies.id"))
    from_level: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_level: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ProcessedEvent(Base):
    """Events already handled: a redelivered `report.assessed` changes nothing."""

    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class OutboxMessage(OutboxMixin, Base):
    """`alerts.v1` events written with the change they describe, published by the relay."""

    __tablename__ = "outbox"
    __outbox_index__ = "ix_alerts_outbox_unsent"
