"""The risk consumer on real Kafka and PostgreSQL: idempotent, history-aware, and never stuck on a bad message."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.events import AlertChanged, AlertState, RiskLevel, Topic, parse_event
from shared.report import ReportKind
from tests.conftest import KafkaReader
from tests.factories import credit_code, make_accepted
from tests.risk.conftest import ADMIN, RiskWorld

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ASSESSED = "SELECT count(*) FROM risk.assessments WHERE report_id = :report_id"


async def assessments_on_topic(risk: RiskWorld, report_id: str) -> list[object]:
    reader = KafkaReader(risk.env["KAFKA_BOOTSTRAP_SERVERS"], risk.env["KAFKA_TOPIC_PREFIX"])
    events = [parse_event(record.value) for record in await reader.read_all(Topic.assessments.value)]  # type: ignore[attr-defined]
    return [event for event in events if getattr(event, "report_id", None) == report_id]


async def test_a_report_delivered_twice_is_assessed_and_published_once(risk: RiskWorld) -> None:
    accepted = make_accepted(workers_involved=320, collective_action=["road_blocking"])

    await risk.publish(Topic.reports, accepted, accepted)
    await risk.wait_until(ASSESSED, lambda n: n == 1, report_id=accepted.report_id)

    on_topic = await assessments_on_topic(risk, accepted.report_id)
    assert len({event.event_id for event in on_topic}) == 1  # type: ignore[attr-defined]
    assert on_topic[0].level == RiskLevel.red  # type: ignore[attr-defined]
    assert await risk.scalar(ASSESSED, report_id=accepted.report_id) == 1


async def test_a_poison_message_goes_to_the_dlq_and_the_next_one_is_processed(risk: RiskWorld) -> None:
    after = make_accepted()

    await risk.publish_raw(Topic.reports, b'{"event_type": "report.accepted", "oops": true}')
    await risk.publish(Topic.reports, after)

    await risk.wait_until(ASSESSED, lambda n: n == 1, report_id=after.report_id)
    reader = KafkaReader(risk.env["KAFKA_BOOTSTRAP_SERVERS"], risk.env["KAFKA_TOPIC_PREFIX"])
    dead = await reader.read_all(Topic.reports.dlq)
    assert len(dead) == 1
    headers = dict(dead[0].headers)  # type: ignore[attr-defined]
    assert b"unparseable event" in headers["dlq_error"]
    assert headers["dlq_consumer_group"] == f"{risk.env['KAFKA_TOPIC_PREFIX']}risk".encode()


async def test_earlier_reports_on_the_same_enterprise_raise_the_score(risk: RiskWorld) -> None:
    code = credit_code()
    now = datetime.now(UTC)
    reports = [make_accepted(enterprise={"credit_code": code}, occurred_at=(now - timedelta(days=d)).isoformat())
               for d in (200, 60, 30, 10)]

    for accepted in reports:  # one at a time, so that each is assessed before the next arrives
        await risk.publish(Topic.reports, accepted)
        await risk.wait_until(ASSESSED, lambda n: n == 1, report_id=accepted.report_id)

    history_points = []
    for accepted in reports:
        view = (await risk.client.get(f"/v1/assessments/{accepted.report_id}", headers=ADMIN)).json()
        history_points.append(sum(r["points"] for r in view["reasons"] if r["criterion"] == "C16"))
    # 200 days ago is outside every later report's 90-day window.
    assert history_points == [0, 0, 5, 10]


async def test_an_open_alert_on_the_enterprise_counts_until_it_is_resolved(risk: RiskWorld) -> None:
    code = credit_code()
    opened = AlertChanged(trace_id="t", event_type="alert.opened", alert_id="a-1", credit_code=code,
                          kind=ReportKind.arrears, level=RiskLevel.yellow, state=AlertState.open, report_ids=["x"])
    resolved = opened.model_copy(update={"event_type": "alert.resolved", "state": AlertState.resolved,
                                         "occurred_at": datetime.now(UTC) + timedelta(seconds=1)})
    while_open = make_accepted(enterprise={"credit_code": code})
    after_resolved = make_accepted(enterprise={"credit_code": code})

    await risk.publish(Topic.alerts, opened)
    await risk.wait_until("SELECT count(*) FROM risk.alert_states WHERE alert_id = 'a-1'", lambda n: n == 1)
    await risk.publish(Topic.reports, while_open)
    await risk.wait_until(ASSESSED, lambda n: n == 1, report_id=while_open.report_id)
    await risk.publish(Topic.alerts, resolved)
    await risk.wait_until("SELECT state FROM risk.alert_states WHERE alert_id = 'a-1'", lambda s: s == "resolved")
    await risk.publish(Topic.reports, after_resolved)
    await risk.wait_until(ASSESSED, lambda n: n == 1, report_id=after_resolved.report_id)

    reasons = [
        {r["criterion"] for r in (await risk.client.get(f"/v1/assessments/{a.report_id}", headers=ADMIN)).json()[
            "reasons"]}
        for a in (while_open, after_resolved)
    ]
    assert "C17" in reasons[0]
    assert "C17" not in reasons[1]


async def test_assessment_api_needs_the_admin_token(risk: RiskWorld) -> None:
    accepted = make_accepted()
    await risk.publish(Topic.reports, accepted)
    await risk.wait_until(ASSESSED, lambda n: n == 1, report_id=accepted.report_id)

    assert (await risk.client.get(f"/v1/assessments/{accepted.report_id}")).status_code == 401
    wrong = {"Authorization": "Bearer not-the-admin-token"}
    assert (await risk.client.get(f"/v1/assessments/{accepted.report_id}", headers=wrong)).status_code == 403
    assert (await risk.client.get("/v1/assessments/no-such-report", headers=ADMIN)).status_code == 404
    view = (await risk.client.get(f"/v1/assessments/{accepted.report_id}", headers=ADMIN)).json()
    assert view["rubric_version"] == "task7-v1"
    assert 0 <= view["score"] <= 100
    assert all(r["text_zh"] and r["text_en"] for r in view["reasons"])


async def test_rubric_is_published_with_levels_and_deadlines(risk: RiskWorld) -> None:
    rubric = (await risk.client.get("/v1/rubric")).json()

    assert rubric["version"] == "task7-v1"
    deadlines = {level["level"]: level["ack_deadline_seconds"] for level in rubric["levels"]}
    assert deadlines == {"red": 3600, "orange": 14400, "yellow": 86400, "blue": None, "none": None}
    assert [c["id"] for c in rubric["criteria"]] == [f"C{n}" for n in range(1, 19)]


async def test_trends_count_levels_by_city_and_day_in_shanghai_time(risk: RiskWorld) -> None:
    # 23:30 UTC is 07:30 the next day in Shanghai: the report counts for that next day.
    occurred = (datetime.now(UTC) - timedelta(days=2)).replace(hour=23, minute=30, second=0, microsecond=0)
    accepted = make_accepted(region_code="659004", occurred_at=occurred.isoformat(), workers_involved=350,
                             collective_action=["road_blocking"])
    await risk.publish(Topic.reports, accepted)
    await risk.wait_until(ASSESSED, lambda n: n == 1, report_id=accepted.report_id)

    response = await risk.client.get("/v1/trends", params={"group_by": "city", "period": "day",
                                                           "since": str((occurred - timedelta(days=3)).date())},
                                     headers=ADMIN)

    assert response.status_code == 200
    buckets = [b for b in response.json()["buckets"] if b["group"] == "659000"]
    assert [(b["period_start"], b["counts"]["red"]) for b in buckets] == [
        (str((occurred + timedelta(hours=8)).date()), 1)
    ]
    bad = await risk.client.get("/v1/trends", params={"group_by": "person"}, headers=ADMIN)
    assert bad.status_code == 422
    assert json.loads(bad.text)["error"]["details"][0]["field"] == "group_by"
