"""Business rules of risk: assessing reports (history from the risk schema, the rubric engine, the stored
assessment), keeping alert states for C17, showing an assessment and the trends, and re-scoring stored reports
for what-if and replay. Flush only: the caller (route, consumer, command line) owns the transaction.

Idempotent by report id: a report already assessed is not scored again; its stored `report.assessed` event (same
event id) is returned so that it can be published again — alerts drops the copy by event id.
"""

from __future__ import annotations

import time
import uuid
from bisect import bisect_left, bisect_right, insort
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from services.risk import repository
from services.risk.metrics import ASSESSMENTS, SCORING_DURATION
from services.risk.models import AlertStateRow, AssessmentRecord, NewAssessment, StoredAssessment
from services.risk.rescoring import OpenAlertReader, rescore
from services.risk.schemas import AssessmentView, TrendBucket, TrendGroup, TrendPeriod, Trends
from services.risk.scoring import HISTORY_WINDOW, Assessment, History, Rubric, score_report
from shared.events import AlertChanged, Reason, ReportAccepted, ReportAssessed, RiskLevel
from shared.http import NotFound
from shared.report import Report

RESCORE_CHUNK = 500


def assessed_event(row: AssessmentRecord | StoredAssessment) -> ReportAssessed:
    """The `report.assessed` event of a stored assessment (always the same event id)."""
    return ReportAssessed(
        event_id=uuid.UUID(row.event_id), trace_id=row.trace_id, occurred_at=row.assessed_at,
        report_id=row.report_id, accepted_at=row.accepted_at, report=Report.model_validate(row.report),
        score=row.score, level=RiskLevel(row.level), rubric_version=row.rubric_version,
        reasons=[Reason.model_validate(reason) for reason in row.reasons], assessed_at=row.assessed_at,
        ack_deadline_seconds=row.ack_deadline_seconds,
    )


class Publishable(NamedTuple):
    """A `report.assessed` event and its JSON (UTF-8), serialised once: stored with the assessment and published
    as is."""

    event: ReportAssessed
    json: bytes


def _json(event: ReportAssessed) -> bytes:
    """The event's JSON as `model_dump_json` gives it, as bytes (without decoding it to a str and back)."""
    return event.__pydantic_serializer__.to_json(event)


async def assess_batch(
    session: AsyncSession, rubric: Rubric, batch: Sequence[ReportAccepted], now: datetime
) -> list[Publishable]:
    """Score the new reports of a batch (in order) and store them; reports assessed before give their stored event.

    Two statements per batch, whatever its size: one read of all it needs (the stored assessments among the batch,
    the history and the open alerts of the enterprises of the others), then one insert of every new assessment.
    Each report scored counts for the next one on the same enterprise (C16), and one assessed at yellow or above
    counts as an open alert for the next one (C17).
    """
    if not batch:
        return []
    ids = [accepted.report_id for accepted in batch]
    unique = _unique(batch)
    context = await repository.batch_context(
        session, [(accepted.report_id, accepted.report.enterprise.credit_code, accepted.report.occurred_at)
                  for accepted in unique],
        window=HISTORY_WINDOW, alerting_levels=[level.value for level in ALERTING_LEVELS],
    )
    stored: dict[str, StoredAssessment | AssessmentRecord] = {row.report_id: row for row in context.stored}
    fresh = [accepted for accepted in unique if accepted.report_id not in stored]
    new: dict[str, Publishable] = {}
    if fresh:
        history = context.history  # sorted per enterprise
        open_alerts = context.open_alerts | expected_open(context.alerting, context.resolutions)
        rows: list[NewAssessment] = []
        for order, accepted in enumerate(fresh):
            report = accepted.report
            earlier = history.setdefault(report.enterprise.credit_code, [])  # sorted
            window_start = report.occurred_at - HISTORY_WINDOW
            started = time.perf_counter()
            outcome = score_report(rubric, report, History(
                # Those in [window_start, occurred_at], by bisection: an enterprise with many reports costs log n.
                earlier_reports_in_90_days=bisect_right(earlier, report.occurred_at) - bisect_left(earlier,
                                                                                                    window_start),
                open_alert=report.enterprise.credit_code in open_alerts,
            ))
            SCORING_DURATION.observe(time.perf_counter() - started)
            insort(earlier, report.occurred_at)
            if opens_alert(outcome.level):  # alerts opens (or joins) one for it: the next report counts it (C17)
                open_alerts.add(report.enterprise.credit_code)
            # Assessment times strictly increase within a batch, so "assessed before" (C16) stays well defined.
            assessed_at = now + timedelta(microseconds=order)
            event = _assessed(accepted, rubric, outcome, assessed_at)
            new[accepted.report_id] = publishable = Publishable(event, _json(event))
            rows.append(_new_row(publishable))
        inserted = await repository.insert_new_assessments(session, rows)
        for (kind, level), count in Counter((row.kind, row.level) for row in rows
                                            if row.report_id in inserted).items():
            ASSESSMENTS.labels(kind=kind, level=level).inc(count)
        lost = [report_id for report_id in new if report_id not in inserted]
        if lost:  # another worker stored them a moment ago (during a rebalance): theirs stand
            for theirs in await repository.assessments_by_report_ids(session, lost):
                stored[theirs.report_id] = theirs
    published: list[Publishable] = []
    for report_id in dict.fromkeys(ids):
        record = stored.get(report_id)
        if record is not None:
            event = assessed_event(record)
            published.append(Publishable(event, _json(event)))
        else:
            published.append(new[report_id])
    return published


def _assessed(accepted: ReportAccepted, rubric: Rubric, outcome: Assessment, at: datetime) -> ReportAssessed:
    """The `report.assessed` event of a report scored now (a new event id); `assessed_event` of its stored row
    gives the same event again."""
    return ReportAssessed(
        trace_id=accepted.trace_id, occurred_at=at, report_id=accepted.report_id, accepted_at=accepted.accepted_at,
        report=accepted.report, score=outcome.score, level=outcome.level, rubric_version=rubric.version,
        reasons=list(outcome.reasons), assessed_at=at, ack_deadline_seconds=rubric.ack_deadline_seconds(outcome.level),
    )


def _new_row(publishable: Publishable) -> NewAssessment:
    event = publishable.event
    report = event.report
    return NewAssessment(
        report_id=event.report_id, event_id=str(event.event_id), trace_id=event.trace_id,
        credit_code=report.enterprise.credit_code, kind=report.kind.value, region_code=report.region_code,
        industry=report.enterprise.industry, occurred_at=report.occurred_at, accepted_at=event.accepted_at,
        assessed_at=event.assessed_at, score=event.score, level=event.level.value,
        rubric_version=event.rubric_version, ack_deadline_seconds=event.ack_deadline_seconds, event=publishable.json,
    )


ALERTING_LEVELS = frozenset(level for level in RiskLevel if level.alerts)


def opens_alert(level: RiskLevel) -> bool:
    """Whether alerts keeps an unresolved alert for a report assessed at `level` (yellow or above)."""
    return level in ALERTING_LEVELS


def expected_open(alerting: Iterable[tuple[str, str, datetime]],
                  resolved: Iterable[tuple[str, str, datetime]]) -> set[str]:
    """Credit codes with an alert that alerts must hold open though its `alerts.v1` event may not be read yet.

    `alerting` gives, per (credit code, kind), when risk last assessed a report at yellow or above: alerts opened an
    alert for it or joined it to the unresolved one of that pair. Only an `alert.resolved` of the same pair that
    occurred at or after that assessment closes it. The pair decides the clearing (alerts keeps one alert per pair),
    the result is keyed by credit code alone, like the known alerts, because C17 asks for an open alert "on this
    enterprise" (any kind). An alert alerts later closes as expired still counts until resolved, as the known ones do.
    """
    last_resolved = {(code, kind): at for code, kind, at in resolved}
    return {code for code, kind, at in alerting
            if (cleared := last_resolved.get((code, kind))) is None or cleared < at}


def _unique(batch: Sequence[ReportAccepted]) -> list[ReportAccepted]:
    """The first copy of each report (intake may publish a report twice after a crash)."""
    first: dict[str, ReportAccepted] = {}
    for accepted in batch:
        first.setdefault(accepted.report_id, accepted)
    return list(first.values())


async def record_alerts(session: AsyncSession, events: Sequence[AlertChanged]) -> None:
    """Keep the latest state of each alert (events of one enterprise arrive in order on one partition), for a
    whole batch in one statement: per alert the latest event of the batch, a later one winning a tie."""
    latest: dict[str, AlertChanged] = {}
    for event in events:
        kept = latest.get(event.alert_id)
        if kept is None or kept.occurred_at <= event.occurred_at:
            latest[event.alert_id] = event
    await repository.upsert_alert_states(session, [
        AlertStateRow(alert_id=event.alert_id, credit_code=event.credit_code, kind=event.kind.value,
                      state=event.state.value, updated_at=event.occurred_at)
        for event in latest.values()
    ])


async def get_assessment(session: AsyncSession, report_id: str) -> AssessmentView:
    """The stored assessment of a report as the API shows it; NotFound before the report is assessed."""
    row = await repository.assessment_by_report_id(session, report_id)
    if row is None:
        raise NotFound("尚未评估该报告 / No assessment for this report (yet)")
    return AssessmentView(
        report_id=row.report_id, score=row.score, level=RiskLevel(row.level), rubric_version=row.rubric_version,
        reasons=[Reason.model_validate(reason) for reason in row.reasons], assessed_at=row.assessed_at,
        kind=row.kind, credit_code=row.credit_code, region_code=row.region_code, occurred_at=row.occurred_at,
    )


async def trends(session: AsyncSession, *, zone: str, group_by: TrendGroup, period: TrendPeriod,
                 since: date) -> Trends:
    """Reports per level, per group and period of `occurred_at` in `zone`; every level appears in each bucket."""
    buckets: dict[tuple[date, str], dict[str, int]] = {}
    for started, group, level, count in await repository.level_counts(
        session, zone=zone, period=period, group_by=group_by, since=since,
    ):
        counts = buckets.setdefault((started, group), {level.value: 0 for level in RiskLevel})
        counts[level] = count
    return Trends(
        group_by=group_by, period=period, since=since, timezone=zone,
        buckets=[TrendBucket(period_start=key[0], group=key[1], counts=counts, total=sum(counts.values()))
                 for key, counts in buckets.items()],
    )


async def rescored(session: AsyncSession, rubric: Rubric, since: datetime | None,
                   until: datetime | None) -> AsyncIterator[list[tuple[AssessmentRecord, Assessment]]]:
    """Re-scores under `rubric` of the stored assessments in range (by `occurred_at`), in chunks, each with the
    history it had when it was assessed. Makes the session's transaction read-only: call it first."""
    open_alert = OpenAlertReader(rubric)
    await repository.make_read_only(session)
    async for chunk in repository.assessments_in_range(session, since, until, window=HISTORY_WINDOW,
                                                       chunk=RESCORE_CHUNK):
        yield [(row, rescore(rubric, row, earlier, open_alert(row))) for row, earlier in chunk]


async def store_rescores(session: AsyncSession, rubric: Rubric, events: Sequence[ReportAssessed],
                         now: datetime) -> set[str]:
    """Store the re-scores (replay events) not stored yet; returns the report ids stored now."""
    return await repository.insert_new_rescores(session, [
        {"report_id": event.report_id, "rubric_version": rubric.version, "event_id": str(event.event_id),
         "score": event.score, "level": event.level.value,
         "reasons": [reason.model_dump() for reason in event.reasons], "assessed_at": now}
        for event in events
    ])
