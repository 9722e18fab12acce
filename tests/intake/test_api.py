"""The intake API on real Kafka and PostgreSQL: credentials, who may read what, idempotency, limits, status."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.auth import hash_token
from shared.events import AlertChanged, AlertState, Reason, ReportAccepted, ReportAssessed, RiskLevel, Topic
from shared.kafka import EventProducer
from shared.report import Report
from tests.conftest import KafkaReader
from tests.factories import make_report_body
from tests.intake.conftest import ADMIN, NewUnit, count_rows, intake_settings, running_intake

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def test_admin_registers_a_unit_whose_key_is_stored_only_as_a_hash(
    intake: httpx.AsyncClient, intake_db: AsyncEngine
) -> None:
    response = await intake.post("/v1/units", json={"name": "玄武区总工会", "region_code": "320102"}, headers=ADMIN)

    assert response.status_code == 201
    body = response.json()
    async with intake_db.connect() as connection:
        stored = (await connection.execute(
            text("SELECT key_hash FROM intake.units WHERE id = :id"), {"id": body["unit_id"]})).scalar_one()
    assert stored == hash_token(body["api_key"])
    assert body["api_key"] not in stored


@pytest.mark.parametrize(
    ("headers", "status"),
    [({}, 401), ({"Authorization": "Bearer not-a-key"}, 401), ({"Authorization": "Basic abc"}, 401)],
)
async def test_reports_need_a_valid_unit_key(intake: httpx.AsyncClient, headers: dict[str, str], status: int) -> None:
    response = await intake.post("/v1/reports", json=make_report_body(), headers=headers)

    assert response.status_code == status
    assert response.json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_a_unit_may_not_register_units(intake: httpx.AsyncClient, new_unit: NewUnit) -> None:
    unit = await new_unit()

    response = await intake.post("/v1/units", json={"name": "x", "region_code": "320102"},
                                 headers={"Authorization": unit["auth"]})

    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


async def test_accepted_report_reaches_kafka_once_without_personal_data(
    intake: httpx.AsyncClient, new_unit: NewUnit, kafka_reader: KafkaReader
) -> None:
    unit = await new_unit()
    body = make_report_body(contact={"name": "王小明", "phone": "13912345678"})

    response = await intake.post("/v1/reports", json=body, headers={"Authorization": unit["auth"]})

    assert response.status_code == 202
    report_id = response.json()["report_id"]
    assert response.json()["status"] == "accepted"
    messages = await _wait_for_report_on_topic(kafka_reader, report_id)
    assert len(messages) == 1
    raw = messages[0].value.decode() + json.dumps([(k, v.decode()) for k, v in messages[0].headers])
    assert "王小明" not in raw
    assert "13912345678" not in raw
    assert "contact" not in raw
    event = ReportAccepted.model_validate_json(messages[0].value)
    assert event.trace_id == report_id
    assert messages[0].key == body["enterprise"]["credit_code"].encode()


async def test_the_submitting_unit_sees_its_contact_and_other_units_see_nothing(
    intake: httpx.AsyncClient, new_unit: NewUnit
) -> None:
    owner, other = await new_unit(), await new_unit(name="另一个工会")
    body = make_report_body(contact={"name": "李四", "phone": "025-12345678"})
    report_id = (await intake.post("/v1/reports", json=body, headers={"Authorization": owner["auth"]})).json()[
        "report_id"]

    own = await intake.get(f"/v1/reports/{report_id}", headers={"Authorization": owner["auth"]})
    admin = await intake.get(f"/v1/reports/{report_id}", headers=ADMIN)
    foreign = await intake.get(f"/v1/reports/{report_id}", headers={"Authorization": other["auth"]})
    foreign_list = await intake.get("/v1/reports", headers={"Authorization": other["auth"]})

    assert own.status_code == 200
    assert own.json()["contact"] == {"name": "李四", "phone": "025-12345678"}
    assert "contact" not in own.json()["report"]
    assert own.json()["report"]["summary"] == body["summary"]
    assert admin.json()["contact"]["name"] == "李四"
    assert foreign.status_code == 404
    assert report_id not in {item["report_id"] for item in foreign_list.json()["items"]}


async def test_same_idempotency_key_and_body_replays_the_first_answer(
    intake: httpx.AsyncClient, new_unit: NewUnit, intake_db: AsyncEngine
) -> None:
    unit = await new_unit()
    headers = {"Authorization": unit["auth"], "Idempotency-Key": f"k-{uuid.uuid4()}"}
    body = make_report_body()
    before = await count_rows(intake_db, "reports")

    first = await intake.post("/v1/reports", json=body, headers=headers)
    # The same JSON with its keys in another order is the same body.
    second = await intake.post("/v1/reports", content=json.dumps(dict(reversed(body.items()))),
                               headers={**headers, "Content-Type": "application/json"})

    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    assert await count_rows(intake_db, "reports") == before + 1


async def test_same_idempotency_key_with_another_body_is_a_conflict(
    intake: httpx.AsyncClient, new_unit: NewUnit, intake_db: AsyncEngine
) -> None:
    unit = await new_unit()
    headers = {"Authorization": unit["auth"], "Idempotency-Key": f"k-{uuid.uuid4()}"}
    await intake.post("/v1/reports", json=make_report_body(), headers=headers)
    before = await count_rows(intake_db, "reports")

    response = await intake.post("/v1/reports", json=make_report_body(workers_involved=99), headers=headers)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert await count_rows(intake_db, "reports") == before


async def test_idempotency_key_longer_than_128_characters_is_refused(
    intake: httpx.AsyncClient, new_unit: NewUnit
) -> None:
    unit = await new_unit()

    response = await intake.post("/v1/reports", json=make_report_body(),
                                 headers={"Authorization": unit["auth"], "Idempotency-Key": "k" * 129})

    assert response.status_code == 422
    detail = response.json()["error"]["details"][0]
    assert (detail["location"], detail["field"]) == ("header", "idempotency-key")


async def test_invalid_report_is_explained_field_by_field_and_changes_nothing(
    intake: httpx.AsyncClient, new_unit: NewUnit, intake_db: AsyncEngine
) -> None:
    unit = await new_unit()
    body = make_report_body(workers_involved=0, region_code="990101", surprise="x")
    before = (await count_rows(intake_db, "reports"), await count_rows(intake_db, "outbox"))

    response = await intake.post("/v1/reports", json=body, headers={"Authorization": unit["auth"]})

    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    fields = {detail["field"] for detail in error["details"]}
    assert {"workers_involved", "region_code", "surprise"} <= fields
    assert all(" / " in detail["reason"] for detail in error["details"])
    assert (await count_rows(intake_db, "reports"), await count_rows(intake_db, "outbox")) == before


async def test_body_over_64_kib_is_refused_with_413(intake: httpx.AsyncClient, new_unit: NewUnit) -> None:
    unit = await new_unit()
    body = make_report_body(summary="长" * 30_000)  # 90 KB of UTF-8
    counted_before = too_large_count()

    response = await intake.post("/v1/reports", json=body, headers={"Authorization": unit["auth"]})
    other_route = await intake.post("/v1/units", json={"name": "长" * 30_000, "region_code": "320102"},
                                    headers={"Authorization": unit["auth"]})

    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert other_route.status_code == 413
    assert too_large_count() == counted_before + 1  # the report only: a unit is no report


def too_large_count() -> float:
    return REGISTRY.get_sample_value("intake_reports_rejected_total", {"reason": "too_large"}) or 0.0


async def test_malformed_json_is_a_clear_422(intake: httpx.AsyncClient, new_unit: NewUnit) -> None:
    unit = await new_unit()

    response = await intake.post("/v1/reports", content=b"{not json",
                                 headers={"Authorization": unit["auth"], "Content-Type": "application/json"})

    assert response.status_code == 422
    assert response.json()["error"]["code"] == "validation_error"


async def test_a_unit_over_its_rate_limit_gets_429_with_retry_after(
    service_env: dict[str, str], new_unit: NewUnit
) -> None:
    unit = await new_unit()
    async with running_intake(intake_settings(service_env, unit_rate_limit=3)) as limited:
        statuses = [
            (await limited.post("/v1/reports", json=make_report_body(), headers={"Authorization": unit["auth"]}))
            for _ in range(4)
        ]

    assert [response.status_code for response in statuses] == [202, 202, 202, 429]
    assert int(statuses[-1].headers["Retry-After"]) >= 1
    assert statuses[-1].json()["error"]["code"] == "rate_limited"


async def test_listing_filters_and_pages_through_a_units_reports(
    intake: httpx.AsyncClient, new_unit: NewUnit
) -> None:
    unit = await new_unit()
    auth = {"Authorization": unit["auth"]}
    ids = [
        (await intake.post("/v1/reports", json=make_report_body(kind=kind), headers=auth)).json()["report_id"]
        for kind in ("arrears", "dispute", "stability", "arrears", "arrears")
    ]

    first = (await intake.get("/v1/reports", params={"limit": 2, "kind": "arrears"}, headers=auth)).json()
    second = (await intake.get("/v1/reports", params={"limit": 2, "kind": "arrears", "cursor": first["next_cursor"]},
                               headers=auth)).json()

    arrears_ids = {ids[0], ids[3], ids[4]}
    seen = [item["report_id"] for item in first["items"] + second["items"]]
    assert set(seen) == arrears_ids
    assert len(seen) == 3
    assert second["next_cursor"] is None
    assert all(item["kind"] == "arrears" for item in first["items"] + second["items"])


async def test_status_follows_the_assessment_and_alert_events(
    intake: httpx.AsyncClient, new_unit: NewUnit, service_env: dict[str, str]
) -> None:
    unit = await new_unit()
    auth = {"Authorization": unit["auth"]}
    body = make_report_body()
    report_id = (await intake.post("/v1/reports", json=body, headers=auth)).json()["report_id"]
    report = Report.model_validate({k: v for k, v in body.items() if k != "contact"})
    now = datetime.now(UTC)
    assessed = ReportAssessed(
        trace_id=report_id, report_id=report_id, accepted_at=now, report=report, score=72, level=RiskLevel.red,
        rubric_version="task7-v1", reasons=[Reason(criterion="C6", points=15, text_zh="欠薪", text_en="arrears")],
        assessed_at=now, ack_deadline_seconds=3600,
    )
    alert_id = str(uuid.uuid4())
    opened = AlertChanged(
        trace_id=report_id, event_type="alert.opened", alert_id=alert_id, credit_code=report.credit_code,
        kind=report.kind, level=RiskLevel.red, state=AlertState.open, report_ids=[report_id], report_id=report_id,
    )
    producer = EventProducer(service_env["KAFKA_BOOTSTRAP_SERVERS"], client_id="test",
                             topic_prefix=service_env["KAFKA_TOPIC_PREFIX"])
    try:
        # The alert event first and the assessment twice: out of order and redelivered, the status still ends right.
        await producer.send_events([(Topic.alerts, opened), (Topic.assessments, assessed),
                                    (Topic.assessments, assessed)])
    finally:
        await producer.stop()

    view = await _poll(intake, f"/v1/reports/{report_id}", auth,
                       lambda v: v["status"] == "alerted" and v["assessment"] is not None)
    assert view["assessment"]["level"] == "red"
    assert view["assessment"]["score"] == 72
    assert view["alert_ids"] == [alert_id]


async def _poll(client: httpx.AsyncClient, path: str, headers: dict[str, str], done, timeout: float = 30.0):  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        view = (await client.get(path, headers=headers)).json()
        if done(view):
            return view
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not reached in {timeout} s: {view}")
        await asyncio.sleep(0.2)


async def _wait_for_report_on_topic(reader: KafkaReader, report_id: str, timeout: float = 20.0) -> list:  # type: ignore[type-arg]
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        records = await reader.read_all(Topic.reports.value, idle_ms=500)
        matching = [r for r in records if ReportAccepted.model_validate_json(r.value).report_id == report_id]
        if matching or asyncio.get_running_loop().time() > deadline:
            return matching
