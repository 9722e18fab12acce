"""Queries of the intake schema. Only this module speaks SQL."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import SCHEMA, IdempotencyKey, OutboxMessage, Report, Unit


async def add_unit(session: AsyncSession, unit: Unit) -> None:
    session.add(unit)
    await session.flush()


async def active_unit_id_by_key_hash(session: AsyncSession, key_hash: str) -> str | None:
    """The id of the active unit whose API key has this hash (a deactivated unit's key is refused)."""
    return await session.scalar(select(Unit.id).where(Unit.key_hash == key_hash, Unit.active.is_(True)))


async def unit_by_id(session: AsyncSession, unit_id: str, *, for_update: bool = False) -> Unit | None:
    return await session.get(Unit, unit_id, with_for_update=for_update)


async def flush(session: AsyncSession) -> None:
    await session.flush()


async def lock_enterprise(session: AsyncSession, credit_code: str) -> None:
    """Hold the enterprise's advisory lock until the transaction ends: reports of one credit code are then accepted
    one after another, so their outbox ids follow their commit (acceptance) order and the relay, which publishes
    in id order, keeps it on Kafka. Reports of different enterprises do not wait for each other."""
    await session.execute(select(func.pg_advisory_xact_lock(enterprise_lock_key(credit_code))))


def enterprise_lock_key(credit_code: str) -> int:
    """The advisory lock key of one enterprise's report order (a signed 64-bit number)."""
    return int.from_bytes(hashlib.sha256(f"report-order:{credit_code}".encode()).digest()[:8], "big", signed=True)


async def claim_idempotency_key(session: AsyncSession, record: IdempotencyKey) -> bool:
    """Insert the key; False when the unit used it before (the existing row is then the first answer)."""
    statement = (
        insert(IdempotencyKey)
        .values(unit_id=record.unit_id, key=record.key, request_hash=record.request_hash,
                report_id=record.report_id, created_at=record.created_at)
        .on_conflict_do_nothing(index_elements=[IdempotencyKey.unit_id, IdempotencyKey.key])
        .returning(IdempotencyKey.key)
    )
    return (await session.scalar(statement)) is not None


async def idempotency_key(session: AsyncSession, unit_id: str, key: str) -> IdempotencyKey | None:
    return await session.get(IdempotencyKey, (unit_id, key))


# The submission hot path speaks Core (no ORM objects, no unit of work, no identity map): one INSERT per table, and
# for a batch one executemany per table (asyncpg pipelines it).
_REPORTS = cast(Table, Report.__table__)
_OUTBOX = cast(Table, OutboxMessage.__table__)
_KEYS = cast(Table, IdempotencyKey.__table__)


# Built once: SQLAlchemy memoizes a statement object's cache key, so executing the same object skips rebuilding and
# coercing it on every request (measured: building `insert().values(...)` per request cost ~8 % of intake's CPU).
_CLAIM_KEY = (
    insert(_KEYS).on_conflict_do_nothing(index_elements=[_KEYS.c.unit_id, _KEYS.c.key]).returning(_KEYS.c.key)
)
_INSERT_REPORT = insert(_REPORTS)
_INSERT_OUTBOX = insert(_OUTBOX)


async def claim_idempotency_keys(session: AsyncSession, rows: Sequence[Mapping[str, Any]]) -> set[str]:
    """Insert a unit's keys (`unit_id, key, request_hash, report_id, created_at`); returns the keys claimed now.
    A key not returned was used before: its existing row holds the first answer. Rows are inserted in key order
    so that two batches sharing keys wait for each other instead of deadlocking."""
    if not rows:
        return set()
    if len(rows) == 1:
        return set((await session.scalars(_CLAIM_KEY, dict(rows[0]))).all())
    ordered = sorted(rows, key=lambda row: str(row["key"]))
    return set((await session.scalars(_CLAIM_KEY, [dict(row) for row in ordered])).all())


async def idempotency_keys(session: AsyncSession, unit_id: str, keys: Sequence[str]) -> dict[str, IdempotencyKey]:
    """The stored rows of these keys of a unit, by key."""
    if not keys:
        return {}
    rows = await session.scalars(
        select(IdempotencyKey).where(IdempotencyKey.unit_id == unit_id, IdempotencyKey.key.in_(sorted(set(keys))))
    )
    return {row.key: row for row in rows}


# One submission, one statement: the key claim, the report and its outbox row in one round trip (data-modifying
# CTEs run together, atomically, in the request's transaction). The report and the event are written only when
# the key was claimed now; no row back means the key was used before. BEGIN + this + COMMIT: three round trips
# instead of five (measured: each round trip is a wait for a PostgreSQL backend on a busy box).
_REPORT_COLUMNS = ("(id, unit_id, kind, region_code, credit_code, accepted_at, body, contact_encrypted, status, "
                   "assessment, alert_ids, updated_at)")
_REPORT_VALUES = ("CAST(:id AS VARCHAR), CAST(:unit_id AS VARCHAR), CAST(:kind AS VARCHAR), "
                  "CAST(:region_code AS VARCHAR), CAST(:credit_code AS VARCHAR), CAST(:accepted_at AS TIMESTAMPTZ), "
                  "CAST(:body AS JSONB), CAST(:contact_encrypted AS BYTEA), 'accepted', NULL, '[]'::jsonb, "
                  "CAST(:accepted_at AS TIMESTAMPTZ)")
_OUTBOX_INSERT = (f"INSERT INTO {SCHEMA}.outbox (event_id, topic, payload, created_at) "
                  "SELECT CAST(:event_id AS VARCHAR), CAST(:topic AS VARCHAR), CAST(:payload AS TEXT), "
                  "CAST(:accepted_at AS TIMESTAMPTZ) FROM report RETURNING id")
_ACCEPT_WITH_KEY = text(
    f"WITH claim AS (INSERT INTO {SCHEMA}.idempotency_keys (unit_id, key, request_hash, report_id, created_at) "
    "VALUES (CAST(:unit_id AS VARCHAR), CAST(:key AS VARCHAR), CAST(:request_hash AS VARCHAR), "
    "CAST(:id AS VARCHAR), CAST(:accepted_at AS TIMESTAMPTZ)) "
    "ON CONFLICT (unit_id, key) DO NOTHING RETURNING report_id), "
    f"report AS (INSERT INTO {SCHEMA}.reports {_REPORT_COLUMNS} SELECT {_REPORT_VALUES} FROM claim RETURNING id) "
    + _OUTBOX_INSERT
)
_ACCEPT = text(
    f"WITH report AS (INSERT INTO {SCHEMA}.reports {_REPORT_COLUMNS} VALUES ({_REPORT_VALUES}) RETURNING id) "
    + _OUTBOX_INSERT
)


async def accept_one(session: AsyncSession, *, key: str | None, request_hash: str, report: Mapping[str, Any],
                     outbox: Mapping[str, Any]) -> bool:
    """Claim `key` (when given) and store the report and its outbox row, in one statement. False when the key was
    used before: nothing is stored then, and the key's row holds the first answer."""
    params = {
        "id": report["id"], "unit_id": report["unit_id"], "kind": report["kind"],
        "region_code": report["region_code"], "credit_code": report["credit_code"],
        "accepted_at": report["accepted_at"], "body": json.dumps(report["body"], ensure_ascii=False),
        "contact_encrypted": report["contact_encrypted"], "event_id": outbox["event_id"], "topic": outbox["topic"],
        "payload": outbox["payload"],
    }
    if key is None:
        await session.execute(_ACCEPT, params)
        return True
    stored = await session.scalar(_ACCEPT_WITH_KEY, {**params, "key": key, "request_hash": request_hash})
    return stored is not None


async def insert_reports_with_events(
    session: AsyncSession, reports: Sequence[Mapping[str, Any]], outbox: Sequence[Mapping[str, Any]]
) -> None:
    """Insert report rows and their outbox rows (column values as dicts), in the session's transaction."""
    if not reports:
        return
    if len(reports) == 1:
        await session.execute(_INSERT_REPORT, dict(reports[0]))
        await session.execute(_INSERT_OUTBOX, dict(outbox[0]))
        return
    await session.execute(_INSERT_REPORT, [dict(row) for row in reports])
    await session.execute(_INSERT_OUTBOX, [dict(row) for row in outbox])


async def report_by_id(session: AsyncSession, report_id: str) -> Report | None:
    return await session.get(Report, report_id)


async def list_reports(
    session: AsyncSession, *, unit_id: str | None, since: datetime | None, kind: str | None,
    region_code: str | None, before: tuple[datetime, str] | None, limit: int,
) -> Sequence[Report]:
    query = select(Report).order_by(Report.accepted_at.desc(), Report.id.desc()).limit(limit)
    if unit_id is not None:
        query = query.where(Report.unit_id == unit_id)
    if since is not None:
        query = query.where(Report.accepted_at >= since)
    if kind is not None:
        query = query.where(Report.kind == kind)
    if region_code is not None:
        query = query.where(Report.region_code == region_code)
    if before is not None:
        query = query.where(func.row(Report.accepted_at, Report.id) < func.row(*before))
    return (await session.scalars(query)).all()


async def reports_for_update(session: AsyncSession, report_ids: Sequence[str]) -> dict[str, Report]:
    rows = await session.scalars(select(Report).where(Report.id.in_(report_ids)).with_for_update())
    return {row.id: row for row in rows}
