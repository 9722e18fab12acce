"""C17 counts an alert that risk's own earlier assessment made alerts open, before its `alerts.v1` event is read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.risk.service import expected_open, opens_alert
from shared.events import AlertChanged, AlertState, ReportAccepted, RiskLevel, Topic
from shared.report import ReportKind
from tests.factories import credit_code, make_accepted
from tests.risk.conftest import ADMIN, RiskWorld

T0 = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)
ASSESSED = "SELECT count(*) FROM risk.assessments WHERE report_id = :report_id"


def test_levels_yellow_and_above_open_alerts() -> None:
    assert [level for level in RiskLevel if opens_alert(level)] == [RiskLevel.red, RiskLevel.orange, RiskLevel.yellow]


def test_an_alerting_assessment_without_resolution_is_expected_open() -> None:
    assert expected_open([("A", "arrears", T0)], []) == {"A"}


def test_a_resolution_at_or_after_the_assessment_clears_it() -> None:
    assert expected_open([("A", "arrears", T0)], [("A", "arrears", T0 + timedelta(seconds=1))]) == set()
    assert expected_open([("A", "arrears", T0)], [("A", "arrears", T0)]) == set()


def test_a_resolution_before_the_assessment_does_not_clear_it() -> None:
    assert expected_open([("A", "arrears", T0)], [("A", "arrears", T0 - timedelta(seconds=1))]) == {"A"}


def test_a_resolution_clears_only_its_own_kind_and_enterprise() -> None:
    alerting = [("A", "arrears", T0), ("A", "dismissal", T0), ("B", "arrears", T0)]
    resolved = [("A", "arrears", T0 + timedelta(hours=1))]
    assert expected_open(alerting, resolved) == {"A", "B"}
    assert expected_open([("A", "arrears", T0)], [("A", "dismissal", T0 + timedelta(hours=1))]) == {"A"}


def red(code: str) -> ReportAccepted:
    return make_accepted(enterprise={"credit_code": code}, workers_involved=320, collective_action=["road_blocking"])


async def c17_of(risk: RiskWorld, report_id: str) -> bool:
    view = (await risk.client.get(f"/v1/assessments/{report_id}", headers=ADMIN)).json()
    return "C17" in {reason["criterion"] for reason in view["reasons"]}


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="session")
async def test_two_red_reports_in_one_batch_the_second_counts_the_alert_of_the_first(risk: RiskWorld) -> None:
    code = credit_code()
    first, second = red(code), red(code)

    await risk.publish(Topic.reports, first, second)  # one send: the consumer reads both in the same batch
    await risk.wait_until(ASSESSED, lambda n: n == 1, report_id=second.report_id)

    assert await risk.scalar(ASSESSED, report_id=first.report_id) == 1
    assert not await c17_of(risk, first.report_id)
    assert await c17_of(risk, second.report_id)
    # No alerts.v1 event was ever published: the second report counted the alert the first one opens.
    assert await risk.scalar("SELECT count(*) FROM risk.alert_states WHERE credit_code = :code", code=code) == 0


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="session")
async def test_a_report_after_the_alert_was_resolved_does_not_count_it(risk: RiskWorld) -> None:
    code = credit_code()
    first = red(code)
    await risk.publish(Topic.reports, first)
    await risk.wait_until(ASSESSED, lambda n: n == 1, report_id=first.report_id)
    kind = ReportKind(await risk.scalar("SELECT kind FROM risk.assessments WHERE report_id = :report_id",
                                        report_id=first.report_id))
    opened = AlertChanged(trace_id="t", event_type="alert.opened", alert_id=f"a-{code}", credit_code=code,
                          kind=kind, level=RiskLevel.red, state=AlertState.open, report_ids=[first.report_id])
    resolved = opened.model_copy(update={"event_type": "alert.resolved", "state": AlertState.resolved,
                                         "occurred_at": datetime.now(UTC) + timedelta(seconds=1)})
    await risk.publish(Topic.alerts, opened, resolved)
    await risk.wait_until("SELECT state FROM risk.alert_states WHERE alert_id = :alert_id",
                          lambda state: state == "resolved", alert_id=opened.alert_id)

    after = red(code)
    await risk.publish(Topic.reports, after)
    await risk.wait_until(ASSESSED, lambda n: n == 1, report_id=after.report_id)

    assert not await c17_of(risk, after.report_id)
