"""Assessing reports: history from the risk schema, the rubric engine, and the stored assessment.

Idempotent by report id: a report already assessed is not scored again; its stored `report.assessed` event (same
event id) is returned so that it can be published again — alerts drops the copy by event id.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.risk.metrics import ASSESSMENTS, SCORING_DURATION
from services.risk.models import Assessment, KnownAlert
from services.risk.scoring.engine import score_report
from services.risk.scoring.rubric import History, Rubric
from shared.events import AlertChanged, Reason, ReportAccepted, ReportAssessed, RiskLevel
from shared.report import Report

HISTORY_WINDOW = timedelta(days=90)


def assessed_event(row: Assessment) -> ReportAssessed:
    """The `report.assessed` event of a stored assessment (always the same event id)."""
    return ReportAssessed(
        event_id=uuid.UUID(row.event_id), trace_id=row.trace_id, occurred_at=row.assessed_at,
        report_id=row.report_id, accepted_at=row.accepted_at, report=Report.model_validate(row.report),
        score=row.score, level=RiskLevel(row.level), rubric_version=row.rubric_version,
        reasons=[Reason.model_validate(reason) for reason in row.reasons], assessed_at=row.assessed_at,
        ack_deadline_seconds=row.ack_deadline_seconds,
    )


async def assess_batch(
    session: AsyncSession, rubric: Rubric, batch: Sequence[ReportAccepted], now: datetime
) -> list[ReportAssessed]:
    """Score the new reports of a batch (in order) and store them; reports assessed before give their stored event.

    A handful of queries per batch, not per report: the history of every enterprise in the batch is read once, and
    each report scored counts for the next one on the same enterprise (C16).
    """
    ids = [accepted.report_id for accepted in batch]
    found = await session.scalars(select(Assessment).where(Assessment.report_id.in_(ids)))
    stored = {row.report_id: row for row in found}
    fresh = [accepted for accepted in _unique(batch) if accepted.report_id not in stored]
    rows: dict[str, Assessment] = {}
    if fresh:
        history = await _history(session, [accepted.report for accepted in fresh])
        open_alerts = await _open_alert_codes(session, {accepted.report.enterprise.credit_code for accepted in fresh})
        for order, accepted in enumerate(fresh):
            report = accepted.report
            earlier = history.setdefault(report.enterprise.credit_code, [])
            window_start = report.occurred_at - HISTORY_WINDOW
            started = time.perf_counter()
            outcome = score_report(rubric, report, History(
                earlier_reports_in_90_days=sum(1 for at in earlier if window_start <= at <= report.occurred_at),
                open_alert=report.enterprise.credit_code in open_alerts,
            ))
            SCORING_DURATION.observe(time.perf_counter() - started)
            earlier.append(report.occurred_at)
            # Assessment times strictly increase within a batch, so "assessed before" (C16) stays well defined.
            assessed_at = now + timedelta(microseconds=order)
            rows[accepted.report_id] = _row(accepted, rubric, outcome.score, outcome.level, outcome.reasons,
                                            assessed_at)
        inserted = set(await session.scalars(
            insert(Assessment).values([_columns(row) for row in rows.values()])
            .on_conflict_do_nothing(index_elements=["report_id"]).returning(Assessment.report_id)
        ))
        for report_id in inserted:
            ASSESSMENTS.labels(kind=rows[report_id].kind, level=rows[report_id].level).inc()
        lost = [report_id for report_id in rows if report_id not in inserted]
        if lost:  # another worker stored them a moment ago (during a rebalance): theirs stand
            for row in await session.scalars(select(Assessment).where(Assessment.report_id.in_(lost))):
                rows[row.report_id] = row
    return [assessed_event(stored.get(report_id) or rows[report_id]) for report_id in dict.fromkeys(ids)]


def _unique(batch: Sequence[ReportAccepted]) -> list[ReportAccepted]:
    """The first copy of each report (intake may publish a report twice after a crash)."""
    first: dict[str, ReportAccepted] = {}
    for accepted in batch:
        first.setdefault(accepted.report_id, accepted)
    return list(first.values())


async def _history(session: AsyncSession, reports: Sequence[Report]) -> dict[str, list[datetime]]:
    """When earlier reports on these enterprises occurred (only what can fall in a 90-day window of the batch)."""
    earliest = min(report.occurred_at for report in reports) - HISTORY_WINDOW
    latest = max(report.occurred_at for report in reports)
    rows = await session.execute(
        select(Assessment.credit_code, Assessment.occurred_at).where(
            Assessment.credit_code.in_({report.enterprise.credit_code for report in reports}),
            Assessment.occurred_at >= earliest, Assessment.occurred_at <= latest,
        )
    )
    history: dict[str, list[datetime]] = {}
    for code, occurred_at in rows:
        history.setdefault(code, []).append(occurred_at)
    return history


async def _open_alert_codes(session: AsyncSession, codes: set[str]) -> set[str]:
    """C17: enterprises with an alert that is not resolved."""
    return set(await session.scalars(
        select(KnownAlert.credit_code).where(KnownAlert.credit_code.in_(codes),
                                             KnownAlert.state != "resolved").distinct()
    ))


def _row(accepted: ReportAccepted, rubric: Rubric, score: int, level: RiskLevel, reasons: Sequence[Reason],
         now: datetime) -> Assessment:
    report = accepted.report
    return Assessment(
        report_id=accepted.report_id, event_id=str(uuid.uuid4()), trace_id=accepted.trace_id,
        credit_code=report.enterprise.credit_code, kind=report.kind.value, region_code=report.region_code,
        industry=report.enterprise.industry, occurred_at=report.occurred_at, accepted_at=accepted.accepted_at,
        assessed_at=now, score=score, level=level.value, rubric_version=rubric.version,
        reasons=[reason.model_dump() for reason in reasons],
        ack_deadline_seconds=rubric.ack_deadline_seconds(level), report=report.model_dump(mode="json"),
    )


def _columns(row: Assessment) -> dict[str, Any]:
    return {column.key: getattr(row, column.key) for column in Assessment.__table__.columns}


async def record_alert(session: AsyncSession, event: AlertChanged) -> None:
    """Keep the latest state of each alert (events of one enterprise arrive in order on one partition)."""
    statement = insert(KnownAlert).values(
        alert_id=event.alert_id, credit_code=event.credit_code, kind=event.kind.value, state=event.state.value,
        updated_at=event.occurred_at,
    )
    await session.execute(statement.on_conflict_do_update(
        index_elements=["alert_id"],
        set_={"state": statement.excluded.state, "updated_at": statement.excluded.updated_at},
        where=KnownAlert.updated_at <= statement.excluded.updated_at,
    ))
