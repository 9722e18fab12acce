"""What the consumer reads before it scores a batch comes in one statement (issue 15: round trips at a trickle): the
stored assessments among the batch, and for the others the history (C16) and the open alerts (C17) of their own
enterprises. These tests fill the database with what each part must find or leave out, so that a merged read that
mixes enterprises, kinds or windows, or drops a part when some reports are stored, changes a score here."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import asyncpg
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from services.risk import service
from services.risk.consumer import AssessmentHandler
from services.risk.scoring.rubric import load_rubric
from shared.db import transaction
from shared.events import AlertChanged, AlertState, ReportAccepted, ReportAssessed, RiskLevel
from shared.kafka import Incoming
from shared.report import ReportKind
from tests.factories import credit_code, make_accepted
from tests.risk.conftest import RiskWorld
from tests.support.statements import counted

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

RUBRIC = load_rubric("task7-v1")
RED = {"workers_involved": 320, "collective_action": ["road_blocking"]}
QUIET = {"workers_involved": 3, "migrant_workers_involved": 0}  # level none: opens no alert
NOW = datetime.now(UTC)


async def assess(db: AsyncEngine, batch: Sequence[ReportAccepted], at: datetime = NOW) -> list[ReportAssessed]:
    async with transaction(async_sessionmaker(db, expire_on_commit=False)) as session:
        return [item.event for item in await service.assess_batch(session, RUBRIC, batch, at)]


async def record(db: AsyncEngine, *events: AlertChanged) -> None:
    async with transaction(async_sessionmaker(db, expire_on_commit=False)) as session:
        await service.record_alerts(session, events)


def report(code: str, days_ago: float, **fields: Any) -> ReportAccepted:
    return make_accepted(enterprise={"credit_code": code}, occurred_at=(NOW - timedelta(days=days_ago)).isoformat(),
                         **(fields or QUIET))


def points(outcome: ReportAssessed, criterion: str) -> int:
    return sum(reason.points for reason in outcome.reasons if reason.criterion == criterion)


def alert(code: str, kind: ReportKind, state: AlertState, at: datetime) -> AlertChanged:
    return AlertChanged(trace_id="t", event_type="alert.resolved" if state == AlertState.resolved else "alert.opened",
                        alert_id=f"{code}-{kind.value}-{state.value}", credit_code=code, kind=kind,
                        level=RiskLevel.red, state=state, report_ids=["x"], occurred_at=at)


async def test_history_counts_the_enterprises_own_earlier_reports_in_its_90_days(risk: RiskWorld) -> None:
    alone, widened, other = credit_code(), credit_code(), credit_code()
    # On each of `alone` and `widened`, for a report 20 days ago: 115 days ago is outside its 90 days; 110 days ago
    # (the window's first instant) and 20 days ago (the same instant as the report) are inside; 10 days ago is after
    # it. `other` has three reports inside that window: they are another enterprise's.
    await assess(risk.db, [report(code, days) for code in (alone, widened) for days in (115, 110, 20, 10)]
                 + [report(other, days) for days in (50, 40, 30)])

    [scored_alone] = await assess(risk.db, [report(alone, 20)])  # the batch's window is exactly the report's
    # With a report 150 days ago on a new enterprise, the batch's window is wider than the report's.
    scored_widened, scored_new = await assess(risk.db, [report(widened, 20), report(credit_code(), 150)])

    assert points(scored_alone, "C16") == 10  # 2 earlier reports (1 → 5, 2 → 10, 3 or more → 15)
    assert points(scored_widened, "C16") == 10
    assert points(scored_new, "C16") == 0


async def test_a_batch_of_stored_and_new_reports_reads_history_for_the_new_ones(risk: RiskWorld) -> None:
    code = credit_code()
    first = report(code, 10)
    [stored] = await assess(risk.db, [first])

    second, third = report(code, 5), report(code, 1)
    with counted(risk.db) as statements:
        again, scored_second, scored_third = await assess(risk.db, [first, second, first, third])

    assert again == stored  # the stored event, same event id
    assert points(scored_second, "C16") == 5  # counts the stored first report
    assert points(scored_third, "C16") == 10  # and the second one, scored just before it in the same batch
    assert len(statements) == 2  # one read, one insert


async def test_open_alerts_are_those_of_the_enterprise_and_cleared_only_by_a_later_resolution_of_its_kind(
    risk: RiskWorld,
) -> None:
    seeded = NOW - timedelta(hours=1)
    known_open, only_resolved, nothing, cleared, resolved_before, other_kind_resolved, quiet = (
        credit_code() for _ in range(7))
    # Assessed at yellow or above an hour ago (alerts opened an alert for each, its event not read yet):
    red = await assess(risk.db, [report(code, 2, **RED) for code in (cleared, resolved_before,
                                                                     other_kind_resolved)], at=seeded)
    assert all(outcome.level.alerts for outcome in red)
    kind = red[0].report.kind
    another = next(other for other in ReportKind if other != kind)
    [plain] = await assess(risk.db, [report(quiet, 2)], at=seeded)
    assert not plain.level.alerts
    await record(
        risk.db,
        alert(known_open, kind, AlertState.open, seeded),  # known from alerts.v1, unresolved
        alert(only_resolved, kind, AlertState.resolved, seeded),
        alert(cleared, kind, AlertState.resolved, seeded + timedelta(seconds=1)),  # after its assessment
        alert(resolved_before, kind, AlertState.resolved, seeded - timedelta(seconds=1)),  # an older alert's
        alert(other_kind_resolved, another, AlertState.resolved, seeded + timedelta(seconds=1)),
    )

    codes = [known_open, only_resolved, nothing, cleared, resolved_before, other_kind_resolved, quiet]
    scored = await assess(risk.db, [report(code, 0) for code in codes])

    assert {code: points(outcome, "C17") > 0 for code, outcome in zip(codes, scored, strict=True)} == {
        known_open: True, only_resolved: False, nothing: False, cleared: False, resolved_before: True,
        other_kind_resolved: True, quiet: False,
    }


class _Recorder:
    """A producer stand-in: what the handler's finish would publish."""

    def __init__(self) -> None:
        self.sent: list[Any] = []

    async def send_encoded(self, items: Sequence[Any]) -> None:
        self.sent.extend(items)


class _CountingConnection(asyncpg.Connection):  # type: ignore[misc]
    """Records the statements sent by `execute` without arguments: BEGIN, COMMIT and ROLLBACK (asyncpg's
    transactions), one round trip each."""

    simple: ClassVar[list[str]] = []

    async def execute(self, query: str, *args: Any, timeout: float | None = None) -> str:
        _CountingConnection.simple.append(query)
        return await super().execute(query, *args, timeout=timeout)  # type: ignore[no-any-return]


async def test_a_lone_report_costs_the_consumer_two_round_trips_each_committed(risk: RiskWorld) -> None:
    engine = create_async_engine(risk.env["DATABASE_URL"], connect_args={"connection_class": _CountingConnection})
    producer = _Recorder()
    handler = AssessmentHandler(sessions=async_sessionmaker(engine, expire_on_commit=False, autoflush=False),
                                producer=producer, rubric=RUBRIC)  # type: ignore[arg-type]
    code = credit_code()
    try:
        await handler([Incoming(None, report(code, 3, **RED))])  # type: ignore[arg-type]  # connects, prepares
        lone = report(code, 1)
        _CountingConnection.simple.clear()
        with counted(engine) as statements:
            finish = await handler([Incoming(None, lone)])  # type: ignore[arg-type]
        assert len(statements) == 2  # the read and the insert
        assert _CountingConnection.simple == []  # no BEGIN, no COMMIT
        # Stored and visible to others as soon as the handler returns, before anything is published.
        assert await risk.scalar("SELECT count(*) FROM risk.assessments WHERE report_id = :r", r=lone.report_id) == 1

        resolved = alert(code, lone.report.kind, AlertState.resolved, NOW)
        with counted(engine) as statements:
            assert await handler([Incoming(None, resolved)]) is None  # type: ignore[arg-type]
        assert len(statements) == 1
        assert _CountingConnection.simple == []
        assert await risk.scalar("SELECT state FROM risk.alert_states WHERE alert_id = :a",
                                 a=resolved.alert_id) == "resolved"

        assert finish is not None
        await finish()
        [(_, event, _)] = producer.sent
        assert event.report_id == lone.report_id
        assert points(event, "C16") == 5  # the red report before it
        assert points(event, "C17") > 0  # and the alert it opened
    finally:
        await engine.dispose()
