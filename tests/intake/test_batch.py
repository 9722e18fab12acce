"""`POST /v1/reports/batch` on real PostgreSQL and Kafka: each item answered in input order with the rules of a single
submission, valid items stored even when others are refused, Idempotency-Key answers shared with `POST /v1/reports`,
the route's own 4 MiB limit, the 500-item cap, and every accepted report on `reports.v1` without personal data."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from shared.events import ReportAccepted, Topic
from tests.conftest import KafkaReader
from tests.factories import make_report_body
from tests.intake.conftest import ADMIN, NewUnit, count_rows, intake_settings, running_intake

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


def _item(key: str | None = None, **overrides: Any) -> dict[str, Any]:
    body = make_report_body(**overrides)
    return body if key is None else {**body, "idempotency_key": key}


async def _stored_ids(engine: AsyncEngine, report_ids: list[str]) -> set[str]:
    async with engine.connect() as connection:
        rows = await connection.execute(text("SELECT id FROM intake.reports WHERE id = ANY(:ids)"),
                                        {"ids": report_ids})
        return {row[0] for row in rows}


async def test_each_item_is_answered_in_order_and_valid_ones_are_stored_beside_refused_ones(
    intake: httpx.AsyncClient, new_unit: NewUnit, intake_db: AsyncEngine
) -> None:
    unit = await new_unit()
    bad_code = make_report_body()
    bad_code["enterprise"]["credit_code"] = "91320100MA1XXXXXX0"
    items: list[Any] = [
        _item(),
        bad_code,
        _item(key=f"k-{uuid.uuid4()}", kind="dispute"),
        "not an object",
        _item(workers_involved=-3, surprise=True),
        _item(key="x" * 129),
    ]
    before = await count_rows(intake_db, "reports"), await count_rows(intake_db, "outbox")

    response = await intake.post("/v1/reports/batch", json={"reports": items}, headers={"Authorization": unit["auth"]})

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["index"] for r in results] == list(range(len(items)))
    assert [r["status"] for r in results] == [202, 422, 202, 422, 422, 422]
    assert all(r["error"]["code"] == "validation_error" for r in results if r["status"] == 422)
    # Field names are relative to the item, located in the body, explained zh / en, never echoing the input.
    code_error = results[1]["error"]["details"]
    assert [(d["field"], d["location"]) for d in code_error] == [("enterprise.credit_code", "body")]
    assert {"workers_involved", "surprise"} <= {d["field"] for d in results[4]["error"]["details"]}
    assert all(" / " in d["reason"] for r in results if r["status"] == 422 for d in r["error"]["details"])
    assert [d["field"] for d in results[5]["error"]["details"]] == ["idempotency_key"]
    # The same details as a single submission of the same body gets.
    for index in (1, 4):
        single = await intake.post("/v1/reports", json=items[index], headers={"Authorization": unit["auth"]})
        assert single.status_code == 422
        assert single.json()["error"] == results[index]["error"]
    accepted = [r["report_id"] for r in results if r["status"] == 202]
    assert len(set(accepted)) == 2
    assert await _stored_ids(intake_db, accepted) == set(accepted)
    assert (await count_rows(intake_db, "reports"), await count_rows(intake_db, "outbox")) == (
        before[0] + 2, before[1] + 2)
    own = await intake.get(f"/v1/reports/{accepted[1]}", headers={"Authorization": unit["auth"]})
    assert own.json()["report"]["kind"] == "dispute"


async def test_idempotency_keys_answer_alike_across_batch_and_single_submissions(
    intake: httpx.AsyncClient, new_unit: NewUnit, intake_db: AsyncEngine
) -> None:
    unit = await new_unit()
    auth = {"Authorization": unit["auth"]}
    single_key, batch_key, fresh_key = (f"{name}-{uuid.uuid4()}" for name in ("single", "batch", "fresh"))
    single_body, batch_body = make_report_body(), make_report_body(kind="stability")
    first = await intake.post("/v1/reports", json=single_body, headers={**auth, "Idempotency-Key": single_key})
    assert first.status_code == 202
    before = await count_rows(intake_db, "reports")

    response = await intake.post("/v1/reports/batch", headers=auth, json={"reports": [
        {**dict(reversed(single_body.items())), "idempotency_key": single_key},  # same content, other key order
        {**make_report_body(), "idempotency_key": single_key},                  # another body: conflict
        {**batch_body, "idempotency_key": batch_key},                            # new key
        {**batch_body, "idempotency_key": batch_key},                            # same key and body in one batch
        {**make_report_body(), "idempotency_key": batch_key},                   # same key, other body, one batch
        {**make_report_body(region_code="32010X"), "idempotency_key": fresh_key},  # invalid: the key stays free
        {**make_report_body(), "idempotency_key": fresh_key},                   # ... so this one takes it
    ]})

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [202, 409, 202, 202, 409, 422, 202]
    assert results[0]["report_id"] == first.json()["report_id"]
    assert results[0]["replayed"] is True
    assert results[1]["error"]["code"] == "conflict"
    assert results[2]["report_id"] == results[3]["report_id"]
    assert (results[2]["replayed"], results[3]["replayed"]) == (False, True)
    assert results[6]["replayed"] is False
    assert await count_rows(intake_db, "reports") == before + 2

    # The same batch again stores nothing new and gives the same ids.
    again = await intake.post("/v1/reports/batch", headers=auth, json={"reports": [
        {**batch_body, "idempotency_key": batch_key}]})
    assert again.json()["results"][0]["report_id"] == results[2]["report_id"]
    assert again.json()["results"][0]["replayed"] is True
    # A single submission meets the batch's key: same body → the batch's answer; another body → 409.
    same = await intake.post("/v1/reports", content=json.dumps(batch_body),
                             headers={**auth, "Idempotency-Key": batch_key, "Content-Type": "application/json"})
    assert (same.status_code, same.json()["report_id"]) == (202, results[2]["report_id"])
    assert same.headers["Idempotent-Replayed"] == "true"
    other = await intake.post("/v1/reports", json=make_report_body(), headers={**auth, "Idempotency-Key": batch_key})
    assert other.status_code == 409
    assert await count_rows(intake_db, "reports") == before + 2


async def test_the_batch_route_takes_up_to_4_mib_and_refuses_more_with_413(
    intake: httpx.AsyncClient, new_unit: NewUnit, intake_db: AsyncEngine
) -> None:
    unit = await new_unit()
    auth = {"Authorization": unit["auth"]}
    # ~150 KiB: above the 64 KiB of every other route, far below the batch route's 4 MiB.
    medium = {"reports": [_item(summary="长" * 1_000) for _ in range(50)]}
    assert len(json.dumps(medium, ensure_ascii=False).encode()) > 64 * 1024
    accepted = await intake.post("/v1/reports/batch", content=json.dumps(medium, ensure_ascii=False).encode(),
                                 headers={**auth, "Content-Type": "application/json"})
    assert accepted.status_code == 200
    assert {r["status"] for r in accepted.json()["results"]} == {202}

    before = await count_rows(intake_db, "reports")
    huge = json.dumps({"reports": [_item(summary="长" * 1_900) for _ in range(800)]}, ensure_ascii=False).encode()
    assert len(huge) > 4 * 1024 * 1024
    refused = await intake.post("/v1/reports/batch", content=huge, headers={**auth, "Content-Type": "application/json"})
    assert refused.status_code == 413
    assert refused.json()["error"]["code"] == "payload_too_large"
    assert "4 MiB" in refused.json()["error"]["message"]
    assert await count_rows(intake_db, "reports") == before
    # The single route keeps its 64 KiB limit.
    single = await intake.post("/v1/reports", json=_item(summary="长" * 30_000), headers=auth)
    assert single.status_code == 413


async def test_500_items_are_taken_and_501_refused_whole(
    intake: httpx.AsyncClient, new_unit: NewUnit, intake_db: AsyncEngine
) -> None:
    unit = await new_unit()
    auth = {"Authorization": unit["auth"]}
    before = await count_rows(intake_db, "reports")

    too_many = await intake.post("/v1/reports/batch", json={"reports": [_item() for _ in range(501)]}, headers=auth)
    empty = await intake.post("/v1/reports/batch", json={"reports": []}, headers=auth)
    full = await intake.post("/v1/reports/batch", json={"reports": [_item() for _ in range(500)]}, headers=auth)

    assert too_many.status_code == 422
    assert too_many.json()["error"]["details"][0]["field"] == "reports"
    assert empty.status_code == 422
    assert full.status_code == 200
    assert [r["status"] for r in full.json()["results"]] == [202] * 500
    assert await count_rows(intake_db, "reports") == before + 500


async def test_a_batch_needs_a_unit_key(intake: httpx.AsyncClient) -> None:
    batch = {"reports": [_item()]}
    assert (await intake.post("/v1/reports/batch", json=batch)).status_code == 401
    assert (await intake.post("/v1/reports/batch", json=batch,
                              headers={"Authorization": "Bearer unit_nope"})).status_code == 401
    assert (await intake.post("/v1/reports/batch", json=batch, headers=ADMIN)).status_code == 400


async def test_the_rate_limit_counts_every_item(service_env: dict[str, str], new_unit: NewUnit,
                                                intake_db: AsyncEngine) -> None:
    unit = await new_unit()
    auth = {"Authorization": unit["auth"]}
    before = await count_rows(intake_db, "reports")
    async with running_intake(intake_settings(service_env, unit_rate_limit=5)) as limited:
        three = await limited.post("/v1/reports/batch", json={"reports": [_item() for _ in range(3)]}, headers=auth)
        three_more = await limited.post("/v1/reports/batch", json={"reports": [_item() for _ in range(3)]},
                                        headers=auth)
        two = await limited.post("/v1/reports/batch", json={"reports": [_item() for _ in range(2)]}, headers=auth)

    assert three.status_code == 200
    assert three_more.status_code == 429
    assert int(three_more.headers["Retry-After"]) >= 1
    assert two.status_code == 200
    assert await count_rows(intake_db, "reports") == before + 5


async def test_every_accepted_item_reaches_kafka_once_without_personal_data(
    intake: httpx.AsyncClient, new_unit: NewUnit, kafka_reader: KafkaReader
) -> None:
    unit = await new_unit()
    items = [_item(key=f"kafka-{uuid.uuid4()}", contact={"name": "赵六", "phone": "13700001111"}) for _ in range(30)]
    items.insert(7, {"kind": "arrears"})  # refused: never published
    response = await intake.post("/v1/reports/batch", json={"reports": items},
                                 headers={"Authorization": unit["auth"]})
    accepted = {r["report_id"] for r in response.json()["results"] if r["status"] == 202}
    assert len(accepted) == 30

    deadline = asyncio.get_running_loop().time() + 30
    while True:
        records = [r for r in await kafka_reader.read_all(Topic.reports.value, idle_ms=500)
                   if ReportAccepted.model_validate_json(r.value).report_id in accepted]  # type: ignore[attr-defined]
        if len(records) >= len(accepted) or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.5)
    published = [ReportAccepted.model_validate_json(r.value).report_id for r in records]  # type: ignore[attr-defined]
    assert sorted(published) == sorted(accepted)
    raw = b"".join(r.value for r in records).decode()  # type: ignore[attr-defined]
    assert "赵六" not in raw
    assert "13700001111" not in raw
    assert "contact" not in raw


async def test_a_cached_key_is_refused_at_once_once_its_unit_is_invalidated(
    intake: httpx.AsyncClient, new_unit: NewUnit, intake_db: AsyncEngine
) -> None:
    from services.intake.service import invalidate_unit_key

    unit = await new_unit()
    auth = {"Authorization": unit["auth"]}
    assert (await intake.get("/v1/reports", headers=auth)).status_code == 200  # the key is now cached
    async with intake_db.begin() as connection:
        await connection.execute(text("UPDATE intake.units SET active = false WHERE id = :id"),
                                 {"id": unit["unit_id"]})

    invalidate_unit_key(unit["unit_id"])

    assert (await intake.get("/v1/reports", headers=auth)).status_code == 401
    assert (await intake.post("/v1/reports/batch", json={"reports": [_item()]}, headers=auth)).status_code == 401
    assert (await intake.post("/v1/reports", json=make_report_body(), headers=auth)).status_code == 401
