"""Tables of the risk schema: assessments (keyed by report id), re-scores under other rubric versions, and the
alert lifecycle as far as scoring needs it (which enterprises have an unresolved alert).

Each table class is named after its table (`assessments` → `AssessmentRecord`, `alert_states` →
`AlertStateRecord`): `Assessment` is the scoring result (`services.risk.scoring`) and `AlertState` the event enum
(`shared.events`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import DateTime, Index, Integer, MetaData, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

SCHEMA = "risk"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class AssessmentRecord(Base):
    """One report as scored when it arrived (the stored form of a scoring `Assessment`). The primary key makes a
    redelivered report change nothing."""

    __tablename__ = "assessments"
    __table_args__ = (
        Index("ix_assessments_credit_code_occurred", "credit_code", "occurred_at"),
        Index("ix_assessments_occurred", "occurred_at"),
    )

    report_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True, comment="id of the report.assessed event")
    trace_id: Mapped[str] = mapped_column(String(64))
    credit_code: Mapped[str] = mapped_column(String(18))
    kind: Mapped[str] = mapped_column(String(16))
    region_code: Mapped[str] = mapped_column(String(6))
    industry: Mapped[str] = mapped_column(String(1))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    assessed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    score: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(8))
    rubric_version: Mapped[str] = mapped_column(String(64))
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    ack_deadline_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    report: Mapped[dict[str, Any]] = mapped_column(JSONB, comment="the report as published (no personal data)")


class Rescore(Base):
    """A report re-scored under another rubric version by `replay` (the original assessment stays as it was)."""

    __tablename__ = "rescores"

    report_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    rubric_version: Mapped[str] = mapped_column(String(64), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    score: Mapped[int] = mapped_column(Integer)
    level: Mapped[str] = mapped_column(String(8))
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    assessed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AlertStateRecord(Base):
    """The latest known state of each alert, from `alerts.v1` (for criterion C17)."""

    __tablename__ = "alert_states"
    __table_args__ = (Index("ix_alert_states_credit_code", "credit_code"),)

    alert_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    credit_code: Mapped[str] = mapped_column(String(18))
    kind: Mapped[str] = mapped_column(String(16))
    state: Mapped[str] = mapped_column(String(16))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class NewAssessment(NamedTuple):
    """The columns of an assessment about to be stored, as the consumer inserts a batch of them at once; `reasons`
    and `report` come from `event`, the JSON (UTF-8) of its `report.assessed` event as published."""

    report_id: str
    event_id: str
    trace_id: str
    credit_code: str
    kind: str
    region_code: str
    industry: str
    occurred_at: datetime
    accepted_at: datetime
    assessed_at: datetime
    score: int
    level: str
    rubric_version: str
    ack_deadline_seconds: int | None
    event: bytes


class AlertStateRow(NamedTuple):
    """An alert's latest state from `alerts.v1`, as stored in `alert_states`."""

    alert_id: str
    credit_code: str
    kind: str
    state: str
    updated_at: datetime


class StoredAssessment(NamedTuple):
    """A stored assessment as the consumer reads it back for a report delivered again (the columns its
    `report.assessed` event is rebuilt from)."""

    credit_code: str
    kind: str
    occurred_at: datetime
    report_id: str
    event_id: str
    trace_id: str
    accepted_at: datetime
    assessed_at: datetime
    score: int
    level: str
    rubric_version: str
    reasons: list[dict[str, Any]]
    ack_deadline_seconds: int | None
    report: dict[str, Any]


class BatchContext(NamedTuple):
    """What the consumer reads before it scores a batch (one statement): the stored assessments among the batch
    and, for the enterprises of the reports not stored yet, when their earlier reports occurred (sorted, by credit
    code), the credit codes with an unresolved alert, (credit code, kind, latest assessed_at) at a level that
    opens an alert and (credit code, kind, latest updated_at) of the resolved alerts."""

    stored: list[StoredAssessment]
    history: dict[str, list[datetime]]
    open_alerts: set[str]
    alerting: list[tuple[str, str, datetime]]
    resolutions: list[tuple[str, str, datetime]]
