"""PostgreSQL stopped for ~20 s while the platform works: intake answers 503 with Retry-After on every route (never
500), `/readyz` says not ready while `/healthz` stays alive, the risk consumer holds its batch (no commit, nothing
dead-lettered) and, once the database is back, every report is assessed exactly once."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator

import httpx
import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.events import Topic
from shared.kafka import EventProducer
from tests.conftest import ADMIN_TOKEN, Infra, KafkaReader, StartService
from tests.factories import make_report_body
from tests.risk.test_fault_tolerance import (
    COUNT,
    assert_each_report_assessed_once,
    publish,
    reports_for,
    scalar,
    start,
    wait_until,
)

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

OUTAGE_SECONDS = 20
REPORTS = 400


@pytest.fixture
def postgres(infra: Infra) -> Iterator[Callable[[str], None]]:
    """Stops and starts the session's PostgreSQL (harness or container); whatever happens in the test, it runs
    again afterwards, since the rest of the session needs it."""
    yield infra.postgres
    infra.postgres("start")


@pytest_asyncio.fixture(loop_scope="session")
async def db(isolated_env: dict[str, str]) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(isolated_env["DATABASE_URL"], pool_pre_ping=True)
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def producer(isolated_env: dict[str, str]) -> AsyncIterator[EventProducer]:
    producer = EventProducer(isolated_env["KAFKA_BOOTSTRAP_SERVERS"], client_id="fault-tests",
                             topic_prefix=isolated_env["KAFKA_TOPIC_PREFIX"])
    yield producer
    await producer.stop()


async def test_a_database_outage_answers_503_holds_batches_and_loses_nothing(
    start_service: StartService, isolated_env: dict[str, str], db: AsyncEngine, producer: EventProducer,
    postgres: Callable[[str], None],
) -> None:
    intake = await asyncio.to_thread(start_service, "intake", **isolated_env)
    risk = await start(start_service, isolated_env)
    async with httpx.AsyncClient(base_url=intake.url, timeout=30) as client:
        created = await client.post("/v1/units", json={"name": "测试工会", "region_code": "320102"},
                                    headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        assert created.status_code == 201, created.text
        auth = {"Authorization": f"Bearer {created.json()['api_key']}"}

        reports = reports_for(REPORTS)
        # A steady stream: the outage starts while the consumer is in the middle of it and ends before it is done.
        publishing = asyncio.create_task(publish(producer, reports, chunk=10, pause=0.1))
        await wait_until(lambda: scalar(db, COUNT), "the first assessments")
        await asyncio.to_thread(postgres, "stop")
        assert not publishing.done(), "the stream ended before the outage began"

        answers: list[httpx.Response] = []
        loop = asyncio.get_running_loop()
        outage_ends = loop.time() + OUTAGE_SECONDS
        while loop.time() < outage_ends:
            answers.append(await client.post("/v1/reports", json=make_report_body(), headers=auth))
            answers.append(await client.get("/v1/reports", headers=auth))
            answers.append(await client.get("/readyz"))
            await asyncio.sleep(0.5)
        health = await client.get("/healthz")
        await asyncio.to_thread(postgres, "start")
        await publishing

        assert health.status_code == 200
        assert health.json()["checks"]["database"] == "unavailable"
        statuses = {response.status_code for response in answers}
        assert statuses == {503}, f"answers during the outage: {sorted(statuses)}"
        assert all(int(response.headers["Retry-After"]) > 0 for response in answers)
        api_answers = [response for response in answers if response.url.path.startswith("/v1/")]
        assert {response.json()["error"]["code"] for response in api_answers} == {"dependency_unavailable"}

        async def all_assessed() -> bool:
            return bool(await scalar(db, COUNT) == REPORTS)

        await wait_until(all_assessed, "every report assessed after the outage", timeout=180, every=0.5)
        assert (await client.get("/readyz")).status_code == 200

    await assert_each_report_assessed_once(db, isolated_env, reports)
    reader = KafkaReader(isolated_env["KAFKA_BOOTSTRAP_SERVERS"], isolated_env["KAFKA_TOPIC_PREFIX"])
    for topic in Topic:
        assert await reader.read_all(topic.dlq, idle_ms=1000) == [], f"{topic.dlq} is not empty"
    for process in (intake, risk):
        assert "sending it to the dead-letter topic" not in process.log_text()
    # The consumer did meet the outage mid-stream, and held its batch rather than skipping it.
    assert "retrying from the same offsets" in risk.log_text()
    assert "internal_error" not in intake.log_text()
