"""The table of units' sign-in sessions, in the intake schema (on intake's declarative Base)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from services.intake.models import Base


class UnitSession(Base):
    """One sign-in of a unit on the form: the hash of the cookie's token, the unit and when it stops working."""

    __tablename__ = "unit_sessions"
    __table_args__ = (Index("ix_unit_sessions_expires", "expires_at"), Index("ix_unit_sessions_unit", "unit_id"))

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    unit_id: Mapped[str] = mapped_column(ForeignKey("units.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
