"""The outbox mixin reproduces the outbox tables the migrations created, and `outbox_row` fills them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import MetaData, Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.schema import CreateIndex, CreateTable

from services.alerts import models as alerts_models
from services.intake import models as intake_models
from shared.events import EventBase
from shared.outbox import OutboxMixin, outbox_row

pytestmark = pytest.mark.unit


def _ddl(table: Table) -> list[str]:
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    return [str(CreateTable(table).compile(dialect=dialect)),
            *sorted(str(CreateIndex(index).compile(dialect=dialect)) for index in table.indexes)]


@pytest.mark.parametrize(("schema", "index", "existing"), [
    ("intake", "ix_outbox_unsent", intake_models.OutboxMessage.__table__),
    ("alerts", "ix_alerts_outbox_unsent", alerts_models.OutboxMessage.__table__),
])
def test_mixin_gives_the_same_ddl_as_the_services_tables(schema: str, index: str, existing: Table) -> None:
    class Base(DeclarativeBase):
        metadata = MetaData(schema=schema)

    class Outbox(OutboxMixin, Base):
        __tablename__ = "outbox"
        __outbox_index__ = index

    assert _ddl(Outbox.__table__) == _ddl(existing)  # type: ignore[arg-type]
    assert "WHERE sent_at IS NULL" in _ddl(existing)[1]


def test_outbox_row_carries_the_event() -> None:
    class Base(DeclarativeBase):
        metadata = MetaData(schema="probe")

    class Outbox(OutboxMixin, Base):
        __tablename__ = "outbox"

    event = EventBase(trace_id="report-1")
    now = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)
    row = outbox_row(Outbox, "reports.v1", event, now)
    assert isinstance(row, Outbox)
    assert (row.event_id, row.topic, row.created_at, row.sent_at) == (str(event.event_id), "reports.v1", now, None)
    assert EventBase.model_validate_json(row.payload) == event
