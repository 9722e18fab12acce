"""Queries of the risk schema. Only this module speaks SQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, literal, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased

from services.risk.models import AlertStateRecord, AssessmentRecord, Rescore
from services.risk.schemas import TrendGroup, TrendPeriod

# --- assessments ---------------------------------------------------------------------------------------------------


async def assessment_by_report_id(session: AsyncSession, report_id: str) -> AssessmentRecord | None:
    """The stored assessment of a report, or None before it is assessed."""
    return await session.get(AssessmentRecord, report_id)


async def assessments_by_report_ids(session: AsyncSession, report_ids: Iterable[str]) -> list[AssessmentRecord]:
    """The stored assessments among these reports (any order)."""
    return list(await session.scalars(
        select(AssessmentRecord).where(AssessmentRecord.report_id.in_(list(report_ids)))
    ))


async def insert_new_assessments(session: AsyncSession, rows: Sequence[AssessmentRecord]) -> set[str]:
    """Insert the rows whose report is not assessed yet; returns the report ids inserted (others stand)."""
    if not rows:
        return set()
    return set(await session.scalars(
        insert(AssessmentRecord).values([_columns(row) for row in rows])
        .on_conflict_do_nothing(index_elements=["report_id"]).returning(AssessmentRecord.report_id)
    ))


def _columns(row: AssessmentRecord) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in AssessmentRecord.__table__.columns}


async def occurrences_of_enterprises(
    session: AsyncSession, credit_codes: Iterable[str], earliest: datetime, latest: datetime
) -> list[tuple[str, datetime]]:
    """(credit code, occurred_at) of the stored reports on these enterprises that occurred in [earliest, latest]."""
    rows = await session.execute(
        select(AssessmentRecord.credit_code, AssessmentRecord.occurred_at).where(
            AssessmentRecord.credit_code.in_(set(credit_codes)),
            AssessmentRecord.occurred_at >= earliest, AssessmentRecord.occurred_at <= latest,
        )
    )
    return [(code, occurred_at) for code, occurred_at in rows]


# --- alert states (C17) --------------------------------------------------------------------------------------------


async def enterprises_with_open_alert(session: AsyncSession, credit_codes: Iterable[str]) -> set[str]:
    """The credit codes among these with an alert that is not resolved."""
    return set(await session.scalars(
        select(AlertStateRecord.credit_code).where(AlertStateRecord.credit_code.in_(set(credit_codes)),
                                                   AlertStateRecord.state != "resolved").distinct()
    ))


async def latest_alerting_assessments(session: AsyncSession, credit_codes: Iterable[str],
                                      levels: Iterable[str]) -> list[tuple[str, str, datetime]]:
    """(credit code, kind, latest assessed_at) of the stored assessments on these enterprises at one of `levels`
    (the levels that open or join an alert)."""
    rows = await session.execute(
        select(AssessmentRecord.credit_code, AssessmentRecord.kind, func.max(AssessmentRecord.assessed_at)).where(
            AssessmentRecord.credit_code.in_(set(credit_codes)), AssessmentRecord.level.in_(list(levels)),
        ).group_by(AssessmentRecord.credit_code, AssessmentRecord.kind)
    )
    return [(code, kind, at) for code, kind, at in rows]


async def latest_resolutions(session: AsyncSession, credit_codes: Iterable[str]) -> list[tuple[str, str, datetime]]:
    """(credit code, kind, latest updated_at) of the resolved alerts on these enterprises."""
    rows = await session.execute(
        select(AlertStateRecord.credit_code, AlertStateRecord.kind, func.max(AlertStateRecord.updated_at)).where(
            AlertStateRecord.credit_code.in_(set(credit_codes)), AlertStateRecord.state == "resolved",
        ).group_by(AlertStateRecord.credit_code, AlertStateRecord.kind)
    )
    return [(code, kind, at) for code, kind, at in rows]


async def upsert_alert_state(session: AsyncSession, *, alert_id: str, credit_code: str, kind: str, state: str,
                             updated_at: datetime) -> None:
    """Store an alert's state unless a later one is stored already."""
    statement = insert(AlertStateRecord).values(
        alert_id=alert_id, credit_code=credit_code, kind=kind, state=state, updated_at=updated_at,
    )
    await session.execute(statement.on_conflict_do_update(
        index_elements=["alert_id"],
        set_={"state": statement.excluded.state, "updated_at": statement.excluded.updated_at},
        where=AlertStateRecord.updated_at <= statement.excluded.updated_at,
    ))


# --- trends --------------------------------------------------------------------------------------------------------


async def level_counts(
    session: AsyncSession, *, zone: str, period: TrendPeriod, group_by: TrendGroup, since: date
) -> list[tuple[date, str, str, int]]:
    """(first day of the period, group, level, count) of assessed reports by `occurred_at` in `zone`."""
    local = func.timezone(zone, AssessmentRecord.occurred_at)
    bucket = func.date_trunc(period, local).label("bucket")
    groups: dict[str, ColumnElement[str] | InstrumentedAttribute[str]] = {
        "region": AssessmentRecord.region_code,
        "city": func.substr(AssessmentRecord.region_code, 1, 4).concat(literal("00")),
        "industry": AssessmentRecord.industry,
        "kind": AssessmentRecord.kind,
    }
    group = groups[group_by].label("grp")
    statement = (
        select(bucket, group, AssessmentRecord.level, func.count())
        .where(local >= since)
        .group_by(bucket, group, AssessmentRecord.level)
        .order_by(bucket, group)
    )
    rows = (await session.execute(statement)).all()
    return [(started.date(), grp, level, count) for started, grp, level, count in rows]


# --- re-scoring (what-if and replay) -------------------------------------------------------------------------------


async def make_read_only(session: AsyncSession) -> None:
    """Make the session's transaction read-only (call before its first query)."""
    await session.execute(text("SET TRANSACTION READ ONLY"))


async def assessments_in_range(
    session: AsyncSession, since: datetime | None, until: datetime | None, *, window: timedelta, chunk: int
) -> AsyncIterator[list[tuple[AssessmentRecord, int]]]:
    """Stored assessments by `occurred_at` (since inclusive, until exclusive), streamed in chunks, each with the
    count of earlier reports on its enterprise the consumer saw when it assessed it (C16): `occurred_at` within
    `window` up to the report's and assessed before it."""
    earlier = aliased(AssessmentRecord)
    earlier_reports = (
        select(func.count()).select_from(earlier).where(
            earlier.credit_code == AssessmentRecord.credit_code,
            earlier.occurred_at <= AssessmentRecord.occurred_at,
            earlier.occurred_at >= AssessmentRecord.occurred_at - window,
            earlier.assessed_at < AssessmentRecord.assessed_at,
        ).correlate(AssessmentRecord).scalar_subquery()
    )
    statement = select(AssessmentRecord, earlier_reports.label("earlier_reports"))
    if since is not None:
        statement = statement.where(AssessmentRecord.occurred_at >= since)
    if until is not None:
        statement = statement.where(AssessmentRecord.occurred_at < until)
    statement = statement.order_by(AssessmentRecord.occurred_at, AssessmentRecord.report_id)
    result = await session.stream(statement.execution_options(yield_per=chunk))
    async for partition in result.partitions(chunk):
        yield [(row, earlier_count) for row, earlier_count in partition]


async def insert_new_rescores(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> set[str]:
    """Insert re-scores (columns of `Rescore`) not stored yet; returns the report ids inserted."""
    if not rows:
        return set()
    return set(await session.scalars(
        insert(Rescore).values(list(rows)).on_conflict_do_nothing().returning(Rescore.report_id)
    ))
