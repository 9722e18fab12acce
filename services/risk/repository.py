"""Queries of the risk schema. Only this module speaks SQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, String, any_, bindparam, func, literal, select, text
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased

from services.risk.models import AlertStateRecord, AlertStateRow, AssessmentRecord, NewAssessment, Rescore
from services.risk.schemas import TrendGroup, TrendPeriod

# --- assessments ---------------------------------------------------------------------------------------------------


async def assessment_by_report_id(session: AsyncSession, report_id: str) -> AssessmentRecord | None:
    """The stored assessment of a report, or None before it is assessed."""
    return await session.get(AssessmentRecord, report_id)


async def assessments_by_report_ids(session: AsyncSession, report_ids: Iterable[str]) -> list[AssessmentRecord]:
    """The stored assessments among these reports (any order)."""
    return list(await session.scalars(
        select(AssessmentRecord).where(AssessmentRecord.report_id == any_(_texts("report_ids", report_ids)))
    ))


def _texts(name: str, values: Iterable[str]) -> BindParameter[Any]:
    """One array parameter (`= ANY(:name)`): the statement's text is the same whatever the number of values, so
    asyncpg prepares it once per connection instead of once per distinct list length (as `IN (...)` would)."""
    array: ARRAY[Any] = ARRAY(String)
    return bindparam(name, list(values), type_=array)


# Every new assessment of a batch in one statement with a fixed text (one array per column), prepared once per
# connection. `report` and `reasons` are taken from the `report.assessed` event as it is published (serialised once,
# for Kafka and for this row alike).
_INSERT_ASSESSMENTS = text("""
WITH new AS MATERIALIZED (
    SELECT report_id, event_id, trace_id, credit_code, kind, region_code, industry, occurred_at, accepted_at,
           assessed_at, score, level, rubric_version, ack_deadline_seconds,
           convert_from(event, 'UTF8')::jsonb AS event
    FROM unnest(CAST(:report_id AS text[]), CAST(:event_id AS text[]), CAST(:trace_id AS text[]),
                CAST(:credit_code AS text[]), CAST(:kind AS text[]), CAST(:region_code AS text[]),
                CAST(:industry AS text[]), CAST(:occurred_at AS timestamptz[]), CAST(:accepted_at AS timestamptz[]),
                CAST(:assessed_at AS timestamptz[]), CAST(:score AS integer[]), CAST(:level AS text[]),
                CAST(:rubric_version AS text[]), CAST(:ack_deadline_seconds AS integer[]), CAST(:event AS bytea[]))
         AS new (report_id, event_id, trace_id, credit_code, kind, region_code, industry, occurred_at,
                 accepted_at, assessed_at, score, level, rubric_version, ack_deadline_seconds, event)
)
INSERT INTO risk.assessments (report_id, event_id, trace_id, credit_code, kind, region_code, industry, occurred_at,
                              accepted_at, assessed_at, score, level, rubric_version, reasons, ack_deadline_seconds,
                              report)
SELECT report_id, event_id, trace_id, credit_code, kind, region_code, industry, occurred_at, accepted_at,
       assessed_at, score, level, rubric_version, event -> 'reasons', ack_deadline_seconds, event -> 'report'
FROM new
ON CONFLICT (report_id) DO NOTHING
RETURNING report_id
""")


async def insert_new_assessments(session: AsyncSession, rows: Sequence[NewAssessment]) -> set[str]:
    """Insert the rows whose report is not assessed yet, in one statement; returns the report ids inserted (others
    stand)."""
    if not rows:
        return set()
    # Rows to columns in one transposition (zip), not a getattr per cell.
    columns = {name: list(values) for name, values in zip(NewAssessment._fields, zip(*rows, strict=True),
                                                          strict=True)}
    return set(await session.scalars(_INSERT_ASSESSMENTS, columns))


async def occurrences_of_enterprises(
    session: AsyncSession, credit_codes: Iterable[str], earliest: datetime, latest: datetime
) -> list[tuple[str, datetime]]:
    """(credit code, occurred_at) of the stored reports on these enterprises that occurred in [earliest, latest]."""
    rows = await session.execute(
        select(AssessmentRecord.credit_code, AssessmentRecord.occurred_at).where(
            AssessmentRecord.credit_code == any_(_texts("credit_codes", set(credit_codes))),
            AssessmentRecord.occurred_at >= earliest, AssessmentRecord.occurred_at <= latest,
        )
    )
    return [(code, occurred_at) for code, occurred_at in rows]


# --- alert states (C17) --------------------------------------------------------------------------------------------


async def enterprises_with_open_alert(session: AsyncSession, credit_codes: Iterable[str]) -> set[str]:
    """The credit codes among these with an alert that is not resolved."""
    return set(await session.scalars(
        select(AlertStateRecord.credit_code).where(
            AlertStateRecord.credit_code == any_(_texts("credit_codes", set(credit_codes))),
            AlertStateRecord.state != "resolved",
        ).distinct()
    ))


async def latest_alerting_assessments(session: AsyncSession, credit_codes: Iterable[str],
                                      levels: Iterable[str]) -> list[tuple[str, str, datetime]]:
    """(credit code, kind, latest assessed_at) of the stored assessments on these enterprises at one of `levels`
    (the levels that open or join an alert)."""
    rows = await session.execute(
        select(AssessmentRecord.credit_code, AssessmentRecord.kind, func.max(AssessmentRecord.assessed_at)).where(
            AssessmentRecord.credit_code == any_(_texts("credit_codes", set(credit_codes))),
            AssessmentRecord.level == any_(_texts("levels", sorted(levels))),
        ).group_by(AssessmentRecord.credit_code, AssessmentRecord.kind)
    )
    return [(code, kind, at) for code, kind, at in rows]


async def latest_resolutions(session: AsyncSession, credit_codes: Iterable[str]) -> list[tuple[str, str, datetime]]:
    """(credit code, kind, latest updated_at) of the resolved alerts on these enterprises."""
    rows = await session.execute(
        select(AlertStateRecord.credit_code, AlertStateRecord.kind, func.max(AlertStateRecord.updated_at)).where(
            AlertStateRecord.credit_code == any_(_texts("credit_codes", set(credit_codes))),
            AlertStateRecord.state == "resolved",
        ).group_by(AlertStateRecord.credit_code, AlertStateRecord.kind)
    )
    return [(code, kind, at) for code, kind, at in rows]


# The latest state of each alert of a batch in one statement (the caller passes one row per alert id: an
# `ON CONFLICT DO UPDATE` may not touch the same row twice).
_UPSERT_ALERT_STATES = text("""
INSERT INTO risk.alert_states (alert_id, credit_code, kind, state, updated_at)
SELECT * FROM unnest(CAST(:alert_id AS text[]), CAST(:credit_code AS text[]), CAST(:kind AS text[]),
                     CAST(:state AS text[]), CAST(:updated_at AS timestamptz[]))
ON CONFLICT (alert_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at
WHERE risk.alert_states.updated_at <= excluded.updated_at
""")


async def upsert_alert_states(session: AsyncSession, states: Sequence[AlertStateRow]) -> None:
    """Store each alert's state unless a later one is stored already (one row per alert id), in one statement."""
    if not states:
        return
    await session.execute(_UPSERT_ALERT_STATES,
                          {name: [getattr(row, name) for row in states] for name in AlertStateRow._fields})


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
