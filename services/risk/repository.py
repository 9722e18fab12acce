"""Queries of the risk schema. Only this module speaks SQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, String, any_, bindparam, func, literal, select, text
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, aliased

from services.risk.models import (
    AlertStateRow,
    AssessmentRecord,
    BatchContext,
    NewAssessment,
    Rescore,
    StoredAssessment,
)
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


# What scoring a batch needs from the database, in one statement (one round trip): the stored assessments among the
# batch (idempotent replays) and, for the enterprises of the reports not stored yet (`fresh`), when their earlier
# reports occurred (C16: only what can fall in a 90-day window of those reports, one sorted array per enterprise)
# and what C17 counts as an open alert (the unresolved alert states; the latest alerting assessment and the latest
# resolution per credit code and kind). One row per item, tagged by `part`, the columns a part does not use NULL
# ('open' may repeat a credit code: one row per unresolved alert). Fixed text, arrays as parameters: prepared once
# per connection.
_BATCH_CONTEXT = text("""
WITH stored AS MATERIALIZED (
    SELECT * FROM risk.assessments WHERE report_id = ANY(CAST(:report_ids AS text[]))
), fresh AS MATERIALIZED (
    SELECT array_agg(DISTINCT batch.credit_code) AS codes,
           min(batch.occurred_at) - CAST(:window AS interval) AS earliest, max(batch.occurred_at) AS latest
    FROM unnest(CAST(:report_ids AS text[]), CAST(:credit_codes AS text[]), CAST(:occurred_ats AS timestamptz[]))
         AS batch (report_id, credit_code, occurred_at)
    WHERE batch.report_id NOT IN (SELECT report_id FROM stored)
)
SELECT 'stored' AS part, credit_code, kind, occurred_at AS at, NULL AS times, report_id, event_id, trace_id,
       accepted_at, assessed_at, score, level, rubric_version, reasons, ack_deadline_seconds, report
FROM stored
UNION ALL
SELECT 'history', earlier.credit_code, NULL, NULL, array_agg(earlier.occurred_at ORDER BY earlier.occurred_at),
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM fresh JOIN risk.assessments AS earlier ON earlier.credit_code = ANY(fresh.codes)
     AND earlier.occurred_at >= fresh.earliest AND earlier.occurred_at <= fresh.latest
GROUP BY earlier.credit_code
UNION ALL
SELECT 'open', alert.credit_code, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM fresh JOIN risk.alert_states AS alert ON alert.credit_code = ANY(fresh.codes) AND alert.state <> 'resolved'
UNION ALL
SELECT 'alerting', alerting.credit_code, alerting.kind, max(alerting.assessed_at), NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM fresh JOIN risk.assessments AS alerting ON alerting.credit_code = ANY(fresh.codes)
     AND alerting.level = ANY(CAST(:alerting_levels AS text[]))
GROUP BY alerting.credit_code, alerting.kind
UNION ALL
SELECT 'resolved', resolved.credit_code, resolved.kind, max(resolved.updated_at), NULL, NULL, NULL, NULL, NULL,
       NULL, NULL, NULL, NULL, NULL, NULL, NULL
FROM fresh JOIN risk.alert_states AS resolved ON resolved.credit_code = ANY(fresh.codes)
     AND resolved.state = 'resolved'
GROUP BY resolved.credit_code, resolved.kind
""")


async def batch_context(session: AsyncSession, reports: Sequence[tuple[str, str, datetime]], *, window: timedelta,
                        alerting_levels: Iterable[str]) -> BatchContext:
    """What scoring these reports (report id, credit code, occurred_at; each once) needs, in one statement: their
    stored assessments and, for the enterprises of those not stored yet, when their earlier reports in [earliest
    occurred_at − `window`, latest occurred_at] occurred (sorted, per credit code), the unresolved alerts, the
    latest assessment at one of `alerting_levels` and the latest resolution per (credit code, kind)."""
    stored: list[StoredAssessment] = []
    history: dict[str, list[datetime]] = {}
    open_alerts: set[str] = set()
    alerting: list[tuple[str, str, datetime]] = []
    resolutions: list[tuple[str, str, datetime]] = []
    result = await session.execute(_BATCH_CONTEXT, {
        "report_ids": [report_id for report_id, _, _ in reports],
        "credit_codes": [credit_code for _, credit_code, _ in reports],
        "occurred_ats": [occurred_at for _, _, occurred_at in reports],
        "window": window, "alerting_levels": sorted(alerting_levels),
    })
    for part, code, kind, at, times, *row in result:
        if part == "history":
            history[code] = times
        elif part == "open":
            open_alerts.add(code)
        elif part == "alerting":
            alerting.append((code, kind, at))
        elif part == "resolved":
            resolutions.append((code, kind, at))
        else:
            stored.append(StoredAssessment(code, kind, at, *row))
    return BatchContext(stored, history, open_alerts, alerting, resolutions)


# --- alert states (C17) --------------------------------------------------------------------------------------------


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
