"""Queries of the intake schema. Only this module speaks SQL."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import IdempotencyKey, OutboxMessage, Report, Unit


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


async def add_report_with_event(session: AsyncSession, report: Report, outbox: OutboxMessage) -> None:
    session.add_all([report, outbox])
    await session.flush()


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
