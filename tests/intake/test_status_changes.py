"""Intake's status consumer applies a batch of downstream events in one statement (`service.status_changes` folds
them per report, `repository.apply_status_changes` writes them). Its result must be what applying the events one
by one gives: a replayed assessment only fills in a missing one, the status never falls, an alert is listed once
and in the order first seen; reports stored elsewhere are skipped."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from services.intake import service
from services.intake.models import Report as ReportRow
from shared.events import AlertChanged, AlertState, Reason, ReportAssessed, RiskLevel
from shared.report import Report
from tests.factories import make_report_body
from tests.intake.conftest import NewUnit

NOW = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


def _report(body: dict[str, Any]) -> Report:
    return Report.model_validate({k: v for k, v in body.items() if k != "contact"})


def _assessed(report_id: str, report: Report, score: int, *, replay: bool = False) -> ReportAssessed:
    return ReportAssessed(
        trace_id=report_id, report_id=report_id, accepted_at=NOW, report=report, score=score, level=RiskLevel.orange,
        rubric_version="task7-v2" if replay else "task7-v1", assessed_at=NOW, replay=replay,
        reasons=[Reason(criterion="C6", points=15, text_zh="欠薪", text_en="arrears")],
    )


def _alert(report_ids: list[str], report: Report, alert_id: str, event_type: str = "alert.opened") -> AlertChanged:
    return AlertChanged(
        trace_id=report_ids[0], event_type=event_type, alert_id=alert_id, credit_code=report.credit_code,
        kind=report.kind, level=RiskLevel.orange, state=AlertState.open, report_ids=report_ids,
        report_id=report_ids[0],
    )


# ------------------------------------------------------------------------------------------------ the fold


@pytest.mark.unit
def test_a_replay_after_a_new_assessment_changes_nothing_and_the_status_only_rises() -> None:
    report = _report(make_report_body())
    changes = service.status_changes([
        _alert(["r1"], report, "a1"), _assessed("r1", report, 40), _assessed("r1", report, 90, replay=True),
        _alert(["r1"], report, "a1", "alert.acknowledged"), _alert(["r1", "r2"], report, "a2"),
    ])
    by_id = {change.report_id: change for change in changes}
    assert by_id["r1"].status == "alerted"  # the assessment after the alert did not lower it
    assert by_id["r1"].assessment is not None
    assert by_id["r1"].assessment["score"] == 40
    assert by_id["r1"].replayed_assessment is None  # it came after a new one: no effect
    assert by_id["r1"].alert_ids == ["a1", "a2"]
    assert by_id["r2"].alert_ids == ["a2"]
    assert by_id["r2"].assessment is None


@pytest.mark.unit
def test_the_first_replay_is_kept_only_as_a_fill_in() -> None:
    report = _report(make_report_body())
    (change,) = service.status_changes([_assessed("r1", report, 70, replay=True),
                                        _assessed("r1", report, 80, replay=True)])
    assert change.assessment is None
    assert change.replayed_assessment is not None
    assert change.replayed_assessment["score"] == 70
    assert change.status == "assessed"


# ------------------------------------------------------------------------------------------- on PostgreSQL


async def _apply(engine: AsyncEngine, events: list[ReportAssessed | AlertChanged]) -> None:
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as session, session.begin():
        await service.record_downstream_events(session, events, NOW)


async def _row(engine: AsyncEngine, report_id: str) -> ReportRow:
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as session:
        row = await session.get(ReportRow, report_id)
    assert row is not None
    return row


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="session")
async def test_batches_on_postgresql_end_as_the_events_one_by_one(
    intake: httpx.AsyncClient, new_unit: NewUnit, intake_db: AsyncEngine
) -> None:
    unit = await new_unit()
    auth = {"Authorization": unit["auth"]}
    bodies = [make_report_body() for _ in range(2)]
    first, second = [(await intake.post("/v1/reports", json=body, headers=auth)).json()["report_id"]
                     for body in bodies]
    report = _report(bodies[0])
    stranger = str(uuid.uuid4())  # not a report of this service: skipped

    # A replay first: it fills in the missing assessment.
    await _apply(intake_db, [_assessed(first, report, 55, replay=True), _assessed(stranger, report, 10)])
    row = await _row(intake_db, first)
    assert (row.status, row.assessment and row.assessment["score"]) == ("assessed", 55)

    # An alert for both reports, then a new assessment (replaces), then a replay (does not), repeated events.
    await _apply(intake_db, [_alert([first, second], report, "a1"), _assessed(first, report, 75),
                             _assessed(first, report, 95, replay=True), _alert([first], report, "a1")])
    row = await _row(intake_db, first)
    assert row.status == "alerted"
    assert row.assessment is not None
    assert row.assessment["score"] == 75
    assert row.alert_ids == ["a1"]

    # Later batches: an assessment arriving after the alert keeps it alerted; a second alert is appended once.
    await _apply(intake_db, [_assessed(second, report, 60), _alert([second], report, "a2")])
    await _apply(intake_db, [_alert([second], report, "a2", "alert.resolved"), _alert([second], report, "a1")])
    row = await _row(intake_db, second)
    assert row.status == "alerted"
    assert row.alert_ids == ["a1", "a2"]
    assert row.assessment is not None
    assert row.assessment["score"] == 60
    assert row.updated_at == NOW
