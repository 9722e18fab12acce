"""Every query of units' sign-in sessions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import Unit
from services.intake.signin.models import UnitSession


async def active_unit_by_key_hash(session: AsyncSession, key_hash: str) -> Unit | None:
    return await session.scalar(select(Unit).where(Unit.key_hash == key_hash, Unit.active.is_(True)))


async def active_unit(session: AsyncSession, unit_id: str) -> Unit | None:
    return await session.scalar(select(Unit).where(Unit.id == unit_id, Unit.active.is_(True)))


async def add_session(session: AsyncSession, row: UnitSession) -> None:
    session.add(row)
    await session.flush()


async def unit_id_by_session_hash(session: AsyncSession, token_hash: str, now: datetime) -> str | None:
    """The unit of an unexpired session, if that unit is still active."""
    return await session.scalar(
        select(UnitSession.unit_id)
        .join(Unit, Unit.id == UnitSession.unit_id)
        .where(UnitSession.token_hash == token_hash, UnitSession.expires_at > now, Unit.active.is_(True))
    )


async def delete_session(session: AsyncSession, token_hash: str) -> None:
    await session.execute(delete(UnitSession).where(UnitSession.token_hash == token_hash))


async def delete_expired(session: AsyncSession, now: datetime) -> None:
    await session.execute(delete(UnitSession).where(UnitSession.expires_at <= now))


async def delete_sessions_of_unit(session: AsyncSession, unit_id: str) -> None:
    await session.execute(delete(UnitSession).where(UnitSession.unit_id == unit_id))
