"""Group commit of submissions (`services.intake.writer`) on real PostgreSQL and Kafka: concurrent submissions are
stored together, yet each answer is decided and kept as one transaction per request would: every 202's report and
outbox row committed, Idempotency-Key answers shared by concurrent requests, a refused item leaving the others
stored, a database lost mid-commit answered 503 with nothing of the group written, and one enterprise's reports in
the outbox in the order they were accepted."""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake import service
from services.intake.repository import NewReport, enterprise_lock_key
from services.intake.validation import ReportSubmission
from services.intake.writer import GroupCommitWriter, NotStored, Stored
from shared.db import create_engine
from tests.factories import credit_code, make_report_body
from tests.intake.conftest import ADMIN, NewUnit, intake_settings, running_intake

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def _rows(engine: AsyncEngine, sql: str, **params: Any) -> list[Any]:
    async with engine.connect() as connection:
        return list((await connection.execute(text(sql), params)).all())


async def _stored(engine: AsyncEngine, report_ids: list[str]) -> tuple[set[str], set[str]]:
    """The ids among `report_ids` that have a report row, and those that have an outbox row."""
    reports = await _rows(engine, "SELECT id FROM intake.reports WHERE id = ANY(:ids)", ids=report_ids)
    events = await _rows(engine, "SELECT payload::jsonb->>'report_id' FROM intake.outbox "
                                 "WHERE payload::jsonb->>'report_id' = ANY(:ids)", ids=report_ids)
    return {row[0] for row in reports}, {row[0] for row in events}


async def test_200_concurrent_submissions_store_200_reports_and_200_events(
    intake: httpx.AsyncClient, intake_db: AsyncEngine, new_unit: NewUnit,
) -> None:
    unit = await new_unit()
    headers = {"Authorization": unit["auth"]}
    answers = await asyncio.gather(*(
        intake.post("/v1/reports", json=make_report_body(workers_involved=n + 1), headers=headers)
        for n in range(200)
    ))
    assert [answer.status_code for answer in answers] == [202] * 200
    report_ids = [answer.json()["report_id"] for answer in answers]
    assert len(set(report_ids)) == 200
    reports, events = await _stored(intake_db, report_ids)
    assert reports == set(report_ids)
    assert events == set(report_ids)
    [(count,)] = await _rows(intake_db, "SELECT count(*) FROM intake.reports WHERE unit_id = :unit",
                             unit=unit["unit_id"])
    assert count == 200
    # Each stored report is the one its answer named (workers_involved told them apart).
    stored = dict(await _rows(intake_db, "SELECT id, (body->>'workers_involved')::int FROM intake.reports "
                                         "WHERE unit_id = :unit", unit=unit["unit_id"]))
    assert [stored[report_id] for report_id in report_ids] == list(range(1, 201))


async def test_concurrent_requests_with_one_key_and_body_store_one_report_and_share_its_id(
    intake: httpx.AsyncClient, intake_db: AsyncEngine, new_unit: NewUnit,
) -> None:
    unit = await new_unit()
    body = make_report_body()
    headers = {"Authorization": unit["auth"], "Idempotency-Key": f"same-{uuid.uuid4()}"}
    answers = await asyncio.gather(*(intake.post("/v1/reports", json=body, headers=headers) for _ in range(30)))
    assert {answer.status_code for answer in answers} == {202}
    assert len({answer.json()["report_id"] for answer in answers}) == 1
    assert sum(answer.headers.get("Idempotent-Replayed") == "true" for answer in answers) == 29
    [(count,)] = await _rows(intake_db, "SELECT count(*) FROM intake.reports WHERE unit_id = :unit",
                             unit=unit["unit_id"])
    assert count == 1
    _, events = await _stored(intake_db, [answers[0].json()["report_id"]])
    assert len(events) == 1


async def test_concurrent_requests_with_one_key_and_two_bodies_store_one_and_refuse_the_other_body(
    intake: httpx.AsyncClient, intake_db: AsyncEngine, new_unit: NewUnit,
) -> None:
    unit = await new_unit()
    first, second = make_report_body(workers_involved=11), make_report_body(workers_involved=22)
    headers = {"Authorization": unit["auth"], "Idempotency-Key": f"two-{uuid.uuid4()}"}
    answers = await asyncio.gather(*(intake.post("/v1/reports", json=first if n % 2 else second, headers=headers)
                                     for n in range(20)))
    [(report_id, workers)] = await _rows(
        intake_db, "SELECT id, (body->>'workers_involved')::int FROM intake.reports WHERE unit_id = :unit",
        unit=unit["unit_id"])
    winner = first if workers == 11 else second
    for n, answer in enumerate(answers):
        if (first if n % 2 else second) is winner:
            assert answer.status_code == 202, answer.text
            assert answer.json()["report_id"] == report_id
        else:
            assert answer.status_code == 409, answer.text
            assert answer.json()["error"]["code"] == "conflict"


async def test_a_batch_item_that_conflicts_leaves_the_others_committed(
    intake: httpx.AsyncClient, intake_db: AsyncEngine, new_unit: NewUnit,
) -> None:
    unit = await new_unit()
    key = f"used-{uuid.uuid4()}"
    used = await intake.post("/v1/reports", json=make_report_body(workers_involved=5),
                             headers={"Authorization": unit["auth"], "Idempotency-Key": key})
    assert used.status_code == 202
    items = [make_report_body(workers_involved=n + 1) for n in range(6)]
    items[3] = {**make_report_body(workers_involved=99), "idempotency_key": key}
    answer = await intake.post("/v1/reports/batch", json={"reports": items}, headers={"Authorization": unit["auth"]})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [result["status"] for result in results] == [202, 202, 202, 409, 202, 202]
    accepted = [result["report_id"] for result in results if result["status"] == 202]
    reports, events = await _stored(intake_db, accepted)
    assert reports == set(accepted) == events
    [(count,)] = await _rows(intake_db, "SELECT count(*) FROM intake.reports WHERE unit_id = :unit",
                             unit=unit["unit_id"])
    assert count == 6  # the first single report and the five others of the batch


@pytest_asyncio.fixture(loop_scope="session")
async def writer(service_env: dict[str, str]) -> AsyncIterator[tuple[GroupCommitWriter, AsyncEngine]]:
    engine = create_engine(service_env["DATABASE_URL"], pool_size=4, max_overflow=0)
    group_writer = GroupCommitWriter(engine, connections=1)
    task = asyncio.create_task(group_writer.run())
    await asyncio.sleep(0)
    yield group_writer, engine
    await group_writer.stop()
    await task
    await engine.dispose()


def _new_report(unit_id: str, *, code: str | None = None) -> NewReport:
    """A report as the API would store it (a real `report.accepted` payload: the session's relay publishes it)."""
    submission = ReportSubmission.model_validate(make_report_body())
    report = service.new_report(unit_id, service.Submission(submission, "", None), Fernet(Fernet.generate_key()),
                                datetime.now(UTC))
    return report if code is None else dataclasses.replace(report, credit_code=code)


async def test_a_report_the_database_refuses_fails_alone_and_its_group_is_stored(
    writer: tuple[GroupCommitWriter, AsyncEngine], new_unit: NewUnit,
) -> None:
    group_writer, engine = writer
    unit_id = (await new_unit())["unit_id"]
    # A credit code longer than the column (18): the database refuses that row, and so the statement of any group
    # holding it. The validation of the API never lets such a report through; here it stands for any bad row.
    bad = _new_report(unit_id, code="X" * 30)
    singles = [_new_report(unit_id) for _ in range(3)]
    batch = [_new_report(unit_id), bad, _new_report(unit_id)]
    results = await asyncio.gather(
        group_writer.store([singles[0]]), group_writer.store(batch), group_writer.store([singles[1]]),
        group_writer.store([singles[2]]), group_writer.store([bad]),
    )
    assert results[0] == [Stored(singles[0].id)]
    assert results[1][0] == Stored(batch[0].id)
    assert isinstance(results[1][1], NotStored)
    assert results[1][2] == Stored(batch[2].id)
    assert results[2] == [Stored(singles[1].id)]
    assert results[3] == [Stored(singles[2].id)]
    assert len(results[4]) == 1
    assert isinstance(results[4][0], NotStored)
    good = [report.id for report in (*singles, batch[0], batch[2])]
    reports, events = await _stored(engine, [*good, bad.id])
    assert reports == set(good) == events


async def test_a_database_lost_mid_commit_answers_503_and_writes_nothing_of_the_group(
    service_env: dict[str, str], intake_db: AsyncEngine,
) -> None:
    settings = intake_settings(service_env, writer_connections=1)
    async with running_intake(settings) as client:
        created = await client.post("/v1/units", json={"name": "断库测试工会", "region_code": "320102"},
                                    headers=ADMIN)
        auth = {"Authorization": f"Bearer {created.json()['api_key']}"}
        locked = credit_code()
        items = [make_report_body(workers_involved=n + 1) for n in range(40)]
        items[17] = make_report_body(enterprise={"credit_code": locked})
        async with intake_db.connect() as holder:
            # Hold the enterprise lock of one item: the batch's group waits for it inside its transaction, after
            # BEGIN; its connection is then killed, as a database restart or a failover would.
            await holder.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": enterprise_lock_key(locked)})
            batch = asyncio.create_task(client.post("/v1/reports/batch", json={"reports": items}, headers=auth))
            waiting = await _wait_for_lock_waiter(intake_db)
            [(terminated,)] = await _rows(intake_db, "SELECT pg_terminate_backend(:pid)", pid=waiting)
            assert terminated is True
            answer = await batch
            await holder.rollback()
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "dependency_unavailable"
        assert int(answer.headers["Retry-After"]) > 0
        codes = [item["enterprise"]["credit_code"] for item in items]
        [(reports,)] = await _rows(intake_db, "SELECT count(*) FROM intake.reports WHERE credit_code = ANY(:codes)",
                                   codes=codes)
        [(events,)] = await _rows(intake_db, "SELECT count(*) FROM intake.outbox WHERE "
                                             "payload::jsonb->'report'->'enterprise'->>'credit_code' = ANY(:codes)",
                                  codes=codes)
        assert (reports, events) == (0, 0)
        # The next group gets a fresh connection: the same batch goes through.
        again = await client.post("/v1/reports/batch", json={"reports": items}, headers=auth)
        assert again.status_code == 200, again.text
        assert {result["status"] for result in again.json()["results"]} == {202}


async def _wait_for_lock_waiter(engine: AsyncEngine) -> int:
    """The pid of the backend waiting for an advisory lock (the writer's), once there is one."""
    for _ in range(600):
        rows = await _rows(engine, "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
        if rows:
            return int(rows[0][0])
        await asyncio.sleep(0.05)
    raise AssertionError("no group waited for the enterprise lock")


async def test_one_enterprises_reports_keep_their_acceptance_order_in_the_outbox_under_concurrency(
    intake: httpx.AsyncClient, intake_db: AsyncEngine, new_unit: NewUnit,
) -> None:
    """Eight clients submit at once, each one report after another (single POSTs and batches), over three
    enterprises: for every enterprise, a report accepted before another was sent has the smaller outbox id (the
    relay publishes in id order), and a batch's items of one enterprise keep their order."""
    unit = await new_unit()
    headers = {"Authorization": unit["auth"]}
    codes = [credit_code() for _ in range(3)]
    log: list[tuple[float, float, str, str]] = []  # (sent, answered, credit code, report id)
    loop = asyncio.get_running_loop()

    async def client(number: int) -> None:
        for n in range(12):
            code = codes[(number + n) % 3]
            sent = loop.time()
            if n % 4 == 3:
                items = [make_report_body(enterprise={"credit_code": code}, workers_involved=k + 1)
                         for k in range(5)]
                answer = await intake.post("/v1/reports/batch", json={"reports": items}, headers=headers)
                assert answer.status_code == 200, answer.text
                ids = [result["report_id"] for result in answer.json()["results"]]
                answered = loop.time()
                log.extend((sent, answered, code, report_id) for report_id in ids)
                batch_order.append(ids)
            else:
                answer = await intake.post("/v1/reports", json=make_report_body(enterprise={"credit_code": code}),
                                           headers=headers)
                assert answer.status_code == 202, answer.text
                log.append((sent, loop.time(), code, answer.json()["report_id"]))

    batch_order: list[list[str]] = []
    await asyncio.gather(*(client(number) for number in range(8)))
    outbox_id = dict(await _rows(
        intake_db, "SELECT payload::jsonb->>'report_id', id FROM intake.outbox WHERE "
                   "payload::jsonb->'report'->'enterprise'->>'credit_code' = ANY(:codes)", codes=codes))
    assert set(outbox_id) == {report_id for *_, report_id in log}
    for ids in batch_order:
        assert [outbox_id[report_id] for report_id in ids] == sorted(outbox_id[report_id] for report_id in ids)
    for first in log:
        for second in log:
            if first[2] == second[2] and first[1] < second[0]:
                assert outbox_id[first[3]] < outbox_id[second[3]]
