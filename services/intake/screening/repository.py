"""Queries of screening rounds. Only this module (of the screening package) speaks SQL."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, case, func, select, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import OutboxMessage, Report, Unit
from services.intake.screening.models import ScreeningExpectedUnit, ScreeningReturn, ScreeningRound


@dataclass(frozen=True)
class CountyTally:
    """Coverage of one county in one round."""

    region_code: str
    expected: int
    answered: int
    no_risk: int
    risks_reported: int


@dataclass(frozen=True)
class RoundCounts:
    round: ScreeningRound
    answered: int


@dataclass(frozen=True)
class UnitRound:
    round: ScreeningRound
    my_status: str | None


async def active_units_in_region(session: AsyncSession, prefix: str) -> Sequence[Unit]:
    """Active units whose county code starts with `prefix`, by county and name."""
    return (await session.scalars(
        select(Unit).where(Unit.active.is_(True), Unit.region_code.startswith(prefix, autoescape=True))
        .order_by(Unit.region_code, Unit.name, Unit.id)
    )).all()


async def add_round(
    session: AsyncSession, round_: ScreeningRound, expected: Sequence[ScreeningExpectedUnit],
    outbox: Sequence[OutboxMessage],
) -> None:
    session.add(round_)
    await session.flush()  # the round first: the snapshot rows refer to it
    session.add_all([*expected, *outbox])
    await session.flush()


async def round_by_id(session: AsyncSession, round_id: str) -> ScreeningRound | None:
    return await session.get(ScreeningRound, round_id)


async def round_for_return(session: AsyncSession, round_id: str) -> ScreeningRound | None:
    """The round, share-locked until the end of the transaction: the due notice (which updates the row) waits for
    a return being stored, and a return waits for a due notice being written, so the notice's list of missing
    units and the accepted returns always agree."""
    return await session.scalar(
        select(ScreeningRound).where(ScreeningRound.id == round_id).with_for_update(read=True)
        .execution_options(populate_existing=True)
    )


async def expected_unit(session: AsyncSession, round_id: str, unit_id: str) -> ScreeningExpectedUnit | None:
    return await session.get(ScreeningExpectedUnit, (round_id, unit_id))


async def own_report_ids(session: AsyncSession, unit_id: str, report_ids: Sequence[str]) -> set[str]:
    """Which of `report_ids` exist and were submitted by `unit_id`."""
    rows = await session.scalars(select(Report.id).where(Report.id.in_(report_ids), Report.unit_id == unit_id))
    return set(rows)


async def upsert_return(
    session: AsyncSession, *, round_id: str, unit_id: str, status: str, report_ids: list[str], note: str | None,
    now: datetime,
) -> ScreeningReturn:
    """Store the unit's answer, replacing an earlier one (its revision then goes up by one)."""
    statement = insert(ScreeningReturn).values(
        round_id=round_id, unit_id=unit_id, status=status, report_ids=report_ids, note=note, revision=1,
        first_submitted_at=now, submitted_at=now,
    )
    upsert = statement.on_conflict_do_update(
        index_elements=[ScreeningReturn.round_id, ScreeningReturn.unit_id],
        set_={
            "status": statement.excluded.status,
            "report_ids": statement.excluded.report_ids,
            "note": statement.excluded.note,
            "revision": ScreeningReturn.revision + 1,
            "submitted_at": statement.excluded.submitted_at,
        },
    ).returning(ScreeningReturn)
    stored: ScreeningReturn | None = await session.scalar(upsert, execution_options={"populate_existing": True})
    assert stored is not None
    return stored


async def add_outbox(session: AsyncSession, rows: Sequence[OutboxMessage]) -> None:
    session.add_all(rows)
    await session.flush()


async def return_of(session: AsyncSession, round_id: str, unit_id: str) -> ScreeningReturn | None:
    return await session.get(ScreeningReturn, (round_id, unit_id))


async def county_tallies(session: AsyncSession, round_id: str) -> list[CountyTally]:
    """Expected and answered units of a round per county, by county code."""
    expected, returned = ScreeningExpectedUnit, ScreeningReturn
    rows = await session.execute(
        select(
            expected.region_code,
            func.count(),
            func.count(returned.unit_id),
            func.count().filter(returned.status == "no_risk"),
            func.count().filter(returned.status == "risks_reported"),
        )
        .select_from(expected)
        .outerjoin(returned, and_(returned.round_id == expected.round_id, returned.unit_id == expected.unit_id))
        .where(expected.round_id == round_id)
        .group_by(expected.region_code)
        .order_by(expected.region_code)
    )
    return [CountyTally(code, int(e), int(a), int(n), int(r)) for code, e, a, n, r in rows]


async def missing_units(session: AsyncSession, round_id: str) -> Sequence[ScreeningExpectedUnit]:
    """Expected units of a round that have not answered, by county and name."""
    expected, returned = ScreeningExpectedUnit, ScreeningReturn
    return (await session.scalars(
        select(expected)
        .outerjoin(returned, and_(returned.round_id == expected.round_id, returned.unit_id == expected.unit_id))
        .where(expected.round_id == round_id, returned.unit_id.is_(None))
        .order_by(expected.region_code, expected.unit_name, expected.unit_id)
    )).all()


def _open_first(now: datetime) -> list[Any]:
    """Open rounds first (soonest due first), then upcoming ones (soonest opening first), then closed ones (latest
    due first)."""
    is_open = and_(ScreeningRound.opens_at <= now, ScreeningRound.due_at > now)
    is_upcoming = ScreeningRound.opens_at > now
    return [
        case((is_open, 0), (is_upcoming, 1), else_=2),
        case((is_open, ScreeningRound.due_at), (is_upcoming, ScreeningRound.opens_at), else_=None).asc().nulls_last(),
        ScreeningRound.due_at.desc(),
        ScreeningRound.id,
    ]


async def list_rounds(session: AsyncSession, *, now: datetime, limit: int) -> list[RoundCounts]:
    """All rounds, open first, with how many units answered each."""
    answered = (
        select(func.count()).where(ScreeningReturn.round_id == ScreeningRound.id).correlate(ScreeningRound)
        .scalar_subquery()
    )
    rows = await session.execute(select(ScreeningRound, answered).order_by(*_open_first(now)).limit(limit))
    return [RoundCounts(round_, int(count)) for round_, count in rows]


async def list_rounds_of_unit(session: AsyncSession, *, unit_id: str, now: datetime, limit: int) -> list[UnitRound]:
    """The rounds a unit is expected to answer, open first, with its answer's status if it gave one."""
    rows = await session.execute(
        select(ScreeningRound, ScreeningReturn.status)
        .join(ScreeningExpectedUnit, and_(ScreeningExpectedUnit.round_id == ScreeningRound.id,
                                          ScreeningExpectedUnit.unit_id == unit_id))
        .outerjoin(ScreeningReturn, and_(ScreeningReturn.round_id == ScreeningRound.id,
                                         ScreeningReturn.unit_id == unit_id))
        .order_by(*_open_first(now)).limit(limit)
    )
    return [UnitRound(round_, status) for round_, status in rows]


async def claim_due_rounds(session: AsyncSession, *, now: datetime, limit: int) -> Sequence[ScreeningRound]:
    """Mark up to `limit` rounds past `due_at` whose due notice is not written yet, and return them.

    The row-based timer: `due_event_at` goes from NULL to `now` once. Rows locked by another replica (or by a
    return being stored) are skipped and picked up by a later call, so no two transactions claim the same round.
    """
    pending = (
        select(ScreeningRound.id)
        .where(ScreeningRound.due_at <= now, ScreeningRound.due_event_at.is_(None))
        .order_by(ScreeningRound.due_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.scalars(
        update(ScreeningRound)
        .where(ScreeningRound.id.in_(pending), ScreeningRound.due_event_at.is_(None))
        .values(due_event_at=now)
        .returning(ScreeningRound)
        .execution_options(populate_existing=True)
    )).all()


async def coverage_by_county(session: AsyncSession, *, now: datetime) -> list[tuple[str, int, int]]:
    """(county code, expected, answered) over the rounds open at `now`; a unit expected in two open rounds counts
    twice."""
    expected, returned = ScreeningExpectedUnit, ScreeningReturn
    rows = await session.execute(
        select(expected.region_code, func.count(), func.count(returned.unit_id))
        .select_from(expected)
        .join(ScreeningRound, ScreeningRound.id == expected.round_id)
        .outerjoin(returned, and_(returned.round_id == expected.round_id, returned.unit_id == expected.unit_id))
        .where(ScreeningRound.opens_at <= now, ScreeningRound.due_at > now)
        .group_by(expected.region_code)
    )
    return [(str(code), int(e), int(a)) for code, e, a in rows]
