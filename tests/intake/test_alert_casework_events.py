"""Intake's status consumer keeps working when alerts.v1 carries the case-ownership events (`alert.owner_named`,
`alert.visit_recorded`): a report stays `alerted` with its alert listed once, and nothing is dead-lettered."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from shared.events import AlertChanged, AlertState, RiskLevel, Topic
from shared.kafka import EventProducer
from shared.report import Report
from tests.conftest import KafkaReader
from tests.factories import make_report_body
from tests.intake.conftest import NewUnit

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def test_owner_and_visit_events_keep_the_report_alerted_once(
    intake: httpx.AsyncClient, new_unit: NewUnit, service_env: dict[str, str]
) -> None:
    unit = await new_unit()
    auth = {"Authorization": unit["auth"]}
    body = make_report_body()
    report_id = (await intake.post("/v1/reports", json=body, headers=auth)).json()["report_id"]
    report = Report.model_validate({k: v for k, v in body.items() if k != "contact"})
    alert_id = str(uuid.uuid4())
    opened = AlertChanged(
        trace_id=report_id, event_type="alert.opened", alert_id=alert_id, credit_code=report.credit_code,
        kind=report.kind, level=RiskLevel.orange, state=AlertState.open, report_ids=[report_id], report_id=report_id,
    )
    casework = [opened.model_copy(update={"event_id": uuid.uuid4(), "event_type": event_type, "body_ids": ["b"]})
                for event_type in ("alert.owner_named", "alert.visit_recorded")]
    later = opened.model_copy(update={"event_id": uuid.uuid4(), "event_type": "alert.acknowledged",
                                      "state": AlertState.acknowledged})
    producer = EventProducer(service_env["KAFKA_BOOTSTRAP_SERVERS"], client_id="test",
                             topic_prefix=service_env["KAFKA_TOPIC_PREFIX"])
    try:
        # The case-ownership events first, then the opening and an acknowledgement: any order ends the same.
        await producer.send_events([(Topic.alerts, event) for event in (*casework, opened, later)])
    finally:
        await producer.stop()

    deadline = asyncio.get_running_loop().time() + 30
    view = (await intake.get(f"/v1/reports/{report_id}", headers=auth)).json()
    while view["status"] != "alerted" and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.2)
        view = (await intake.get(f"/v1/reports/{report_id}", headers=auth)).json()

    assert view["status"] == "alerted"
    assert view["alert_ids"] == [alert_id]
    reader = KafkaReader(service_env["KAFKA_BOOTSTRAP_SERVERS"], service_env["KAFKA_TOPIC_PREFIX"])
    dead = [r for r in await reader.read_all(Topic.alerts.dlq, idle_ms=500)
            if alert_id.encode() in (r.value or b"")]  # type: ignore[attr-defined]
    assert dead == []
