"""The risk consumer keeps working when alerts.v1 carries the case-ownership events (`alert.owner_named`,
`alert.visit_recorded`): they carry the alert's state as it is, so the known state stays right, nothing is
dead-lettered, and later lifecycle events still apply."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from shared.events import AlertChanged, AlertState, RiskLevel, Topic
from shared.report import ReportKind
from tests.conftest import KafkaReader
from tests.factories import credit_code, make_accepted
from tests.risk.conftest import RiskWorld

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

STATE = "SELECT state FROM risk.alert_states WHERE alert_id = :alert_id"
ASSESSED = "SELECT count(*) FROM risk.assessments WHERE report_id = :report_id"


async def test_owner_and_visit_events_change_no_state_and_the_consumer_goes_on(risk: RiskWorld) -> None:
    code = credit_code()
    start = datetime.now(UTC)
    opened = AlertChanged(trace_id="t", event_type="alert.opened", alert_id="casework-1", credit_code=code,
                          kind=ReportKind.arrears, level=RiskLevel.orange, state=AlertState.open, report_ids=["x"])
    owner = opened.model_copy(update={"event_type": "alert.owner_named", "occurred_at": start + timedelta(seconds=1),
                                      "body_ids": ["b"]})
    visit = opened.model_copy(update={"event_type": "alert.visit_recorded",
                                      "occurred_at": start + timedelta(seconds=2), "body_ids": ["b"]})
    resolved = opened.model_copy(update={"event_type": "alert.resolved", "state": AlertState.resolved,
                                         "occurred_at": start + timedelta(seconds=3)})
    while_open = make_accepted(enterprise={"credit_code": code})

    await risk.publish(Topic.alerts, opened, owner, visit)
    await risk.wait_until("SELECT updated_at FROM risk.alert_states WHERE alert_id = 'casework-1'",
                          lambda at: at is not None and at >= visit.occurred_at)
    assert await risk.scalar(STATE, alert_id="casework-1") == "open"
    await risk.publish(Topic.reports, while_open)
    await risk.wait_until(ASSESSED, lambda n: n == 1, report_id=while_open.report_id)
    await risk.publish(Topic.alerts, resolved)
    await risk.wait_until(STATE, lambda state: state == "resolved", alert_id="casework-1")

    reader = KafkaReader(risk.env["KAFKA_BOOTSTRAP_SERVERS"], risk.env["KAFKA_TOPIC_PREFIX"])
    dead = [r for r in await reader.read_all(Topic.alerts.dlq, idle_ms=500)
            if b"casework-1" in (r.value or b"")]  # type: ignore[attr-defined]
    assert dead == []
