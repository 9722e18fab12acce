"""Tables of screening rounds, in the intake schema (on intake's declarative Base).

The expected units are a snapshot taken when the round is created: units registered or deactivated later do not
change who was expected, so a round's history stays as it was.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from services.intake.models import Base


def _uuid() -> str:
    return str(uuid.uuid4())


class ScreeningRound(Base):
    """A screening round over a region, open from `opens_at` until `due_at`.

    `due_event_at` is the row-based timer of the due notice: NULL until one transaction sets it and writes the
    `screening.round_due` events to the outbox, so that the notice goes out exactly once across replicas.
    """

    __tablename__ = "screening_rounds"
    __table_args__ = (
        CheckConstraint("due_at > opens_at", name="ck_screening_rounds_window"),
        CheckConstraint("region_level IN ('province', 'city', 'county')", name="ck_screening_rounds_level"),
        Index("ix_screening_rounds_due_pending", "due_at", postgresql_where=text("due_event_at IS NULL")),
        Index("ix_screening_rounds_window", "opens_at", "due_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    name: Mapped[str] = mapped_column(String(200))
    region_code: Mapped[str] = mapped_column(String(6))
    region_level: Mapped[str] = mapped_column(String(8))
    opens_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expected_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    due_event_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ScreeningExpectedUnit(Base):
    """A unit expected to answer a round, with its name and county as they were when the round was created."""

    __tablename__ = "screening_expected_units"
    __table_args__ = (Index("ix_screening_expected_units_unit", "unit_id"),)

    round_id: Mapped[str] = mapped_column(ForeignKey("screening_rounds.id"), primary_key=True)
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id"), primary_key=True)
    unit_name: Mapped[str] = mapped_column(String(200))
    region_code: Mapped[str] = mapped_column(String(6))


class ScreeningReturn(Base):
    """A unit's answer to a round; one per unit and round (a later answer before `due_at` replaces it)."""

    __tablename__ = "screening_returns"
    __table_args__ = (
        # Only an expected unit can answer: the return hangs on its row of the snapshot.
        ForeignKeyConstraint(
            ["round_id", "unit_id"],
            ["screening_expected_units.round_id", "screening_expected_units.unit_id"],
            name="fk_screening_returns_expected",
        ),
        CheckConstraint("status IN ('no_risk', 'risks_reported')", name="ck_screening_returns_status"),
    )

    round_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    status: Mapped[str] = mapped_column(String(16))
    report_ids: Mapped[list[str]] = mapped_column(JSONB)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    revision: Mapped[int] = mapped_column(Integer)
    first_submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
