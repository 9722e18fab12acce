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

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.risk.metrics import ASSESSMENTS, SCORING_DURATION
from services.risk.models import AlertState, Assessment
from services.risk.scoring.engine import score_report
from services.risk.scoring.rubric import History, Rubric
from shared.events import AlertChanged, Reason, ReportAccepted, ReportAssessed, RiskLevel
from shared.report import Report

HISTORY_WINDOW = timedelta(days=90)


async def history_for(session: AsyncSession, report: Report) -> History:
    """C16: reports on the same enterprise assessed before, whose `occurred_at` lies in the 90 days up to this
    one's. C17: an alert on the same enterprise that is not resolved."""
    code = report.enterprise.credit_code
    earlier = await session.scalar(
        select(func.count()).select_from(Assessment).where(
            Assessment.credit_code == code,
            Assessment.occurred_at <= report.occurred_at,
            Assessment.occurred_at >= report.occurred_at - HISTORY_WINDOW,
        )
    )
    open_alert = await session.scalar(
        select(func.count()).select_from(AlertState).where(AlertState.credit_code == code,
                                                           AlertState.state != "resolved")
    )
    return History(earlier_reports_in_90_days=int(earlier or 0), open_alert=bool(open_alert))


def assessed_event(row: Assessment) -> ReportAssessed:
    """The `report.assessed` event of a stored assessment (always the same event id)."""
    return ReportAssessed(
        event_id=uuid.UUID(row.event_id), trace_id=row.trace_id, occurred_at=row.assessed_at,
        report_id=row.report_id, accepted_at=row.accepted_at, report=Report.model_validate(row.report),
        score=row.score, level=RiskLevel(row.level), rubric_version=row.rubric_version,
        reasons=[Reason.model_validate(reason) for reason in row.reasons], assessed_at=row.assessed_at,
        ack_deadline_seconds=row.ack_deadline_seconds,
    )


async def assess(session: AsyncSession, rubric: Rubric, accepted: ReportAccepted, now: datetime) -> ReportAssessed:
    """Score one accepted report and store it, or return what was stored for it before."""
    existing = await session.get(Assessment, accepted.report_id)
    if existing is not None:
        return assessed_event(existing)
    report = accepted.report
    history = await history_for(session, report)
    started = time.perf_counter()
    outcome = score_report(rubric, report, history)
    SCORING_DURATION.observe(time.perf_counter() - started)
    row = _row(accepted, rubric, outcome.score, outcome.level, list(outcome.reasons), now)
    inserted = await session.scalar(
        insert(Assessment).values(**_columns(row)).on_conflict_do_nothing(index_elements=["report_id"])
        .returning(Assessment.report_id)
    )
    if inserted is None:  # another worker stored it a moment ago (during a rebalance)
        stored = await session.get(Assessment, accepted.report_id, populate_existing=True)
        assert stored is not None
        return assessed_event(stored)
    ASSESSMENTS.labels(kind=report.kind.value, level=outcome.level.value).inc()
    return assessed_event(row)


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
    statement = insert(AlertState).values(
        alert_id=event.alert_id, credit_code=event.credit_code, kind=event.kind.value, state=event.state.value,
        updated_at=event.occurred_at,
    )
    await session.execute(statement.on_conflict_do_update(
        index_elements=["alert_id"],
        set_={"state": statement.excluded.state, "updated_at": statement.excluded.updated_at},
        where=AlertState.updated_at <= statement.excluded.updated_at,
    ))
