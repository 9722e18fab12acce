"""The risk service as real processes under faults: a SIGKILL mid-stream and consumer-group rebalances.

Delivery is at least once with idempotent consumers: after a crash or a rebalance a batch can be read and published
again, so `assessments.v1` may carry copies of an event — but always with the same event id (the stored
assessment's), which is what downstream consumers deduplicate on. The database must hold each report exactly once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.events import ReportAccepted, Topic
from shared.kafka import EventProducer
from tests.conftest import KafkaReader, StartService
from tests.factories import credit_code, make_accepted
from tests.support.processes import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

COUNT = "SELECT count(*) FROM risk.assessments"


def reports_for(count: int, enterprises: int = 50) -> list[ReportAccepted]:
    codes = [credit_code() for _ in range(enterprises)]
    return [make_accepted(enterprise={"credit_code": codes[n % enterprises]}) for n in range(count)]


@pytest_asyncio.fixture(loop_scope="session")
async def db(isolated_env: dict[str, str]) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(isolated_env["DATABASE_URL"])
    yield engine
    await engine.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def producer(isolated_env: dict[str, str]) -> AsyncIterator[EventProducer]:
    producer = EventProducer(isolated_env["KAFKA_BOOTSTRAP_SERVERS"], client_id="fault-tests",
                             topic_prefix=isolated_env["KAFKA_TOPIC_PREFIX"])
    yield producer
    await producer.stop()


async def publish(producer: EventProducer, reports: Sequence[ReportAccepted], chunk: int = 50,
                  pause: float = 0.1) -> None:
    """Publish as a stream: `chunk` reports at a time with a pause between, so consumers work while it runs."""
    for start in range(0, len(reports), chunk):
        await producer.send_events([(Topic.reports, accepted) for accepted in reports[start:start + chunk]])
        await asyncio.sleep(pause)


async def scalar(db: AsyncEngine, sql: str) -> Any:
    async with db.connect() as connection:
        return (await connection.execute(text(sql))).scalar()


async def wait_until(check: Callable[[], Any], what: str, timeout: float = 60.0, every: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await check()
        if value:
            return value
        await asyncio.sleep(every)
    pytest.fail(f"timed out waiting for {what}")


async def start(start_service: StartService, env: dict[str, str]) -> ServiceProcess:
    """Start a risk process without blocking the event loop (a publisher may be running on it)."""
    return await asyncio.to_thread(start_service, "risk", **env)


async def event_ids_by_report(env: dict[str, str]) -> dict[str, set[str]]:
    reader = KafkaReader(env["KAFKA_BOOTSTRAP_SERVERS"], env["KAFKA_TOPIC_PREFIX"])
    by_report: dict[str, set[str]] = defaultdict(set)
    for record in await reader.read_all(Topic.assessments.value, idle_ms=1000):
        event = json.loads(record.value)  # type: ignore[attr-defined]
        by_report[event["report_id"]].add(event["event_id"])
    return by_report


async def assert_each_report_assessed_once(db: AsyncEngine, env: dict[str, str],
                                           reports: Sequence[ReportAccepted]) -> None:
    """One row per report in the database, and every report on the topic with exactly one distinct event id."""
    expected = {accepted.report_id for accepted in reports}
    assert await scalar(db, "SELECT count(*) FROM risk.assessments") == len(reports)
    assert await scalar(db, "SELECT count(DISTINCT report_id) FROM risk.assessments") == len(reports)

    async def all_published() -> dict[str, set[str]] | None:
        by_report = await event_ids_by_report(env)
        return by_report if expected <= by_report.keys() else None

    # The last batch is published just after it is stored: give the topic a moment to catch up.
    by_report = await wait_until(all_published, "every assessment on the topic", timeout=30, every=0.5)
    assert by_report.keys() == expected
    several = {report_id: ids for report_id, ids in by_report.items() if len(ids) != 1}
    assert not several, f"{len(several)} reports published with more than one event id"
    async with db.connect() as connection:
        rows = (await connection.execute(text("SELECT report_id, event_id FROM risk.assessments"))).all()
    stored: dict[str, str] = {str(row[0]): str(row[1]) for row in rows}
    assert {report_id: next(iter(ids)) for report_id, ids in by_report.items()} == stored


def log_entries(process: ServiceProcess) -> list[dict[str, Any]]:
    entries = []
    for line in process.log_text().splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def assigned_report_partitions(process: ServiceProcess, prefix: str) -> list[str]:
    """The `reports.v1` partitions of the process's latest assignment."""
    assignments = [entry for entry in log_entries(process) if entry.get("message") == "partitions assigned"]
    if not assignments:
        return []
    return [p for p in assignments[-1].get("partitions", []) if p.startswith(f"{prefix}{Topic.reports.value}:")]


def assessed_lines(process: ServiceProcess) -> int:
    return sum(1 for entry in log_entries(process) if entry.get("message") == "report assessed")


async def test_a_worker_killed_mid_stream_loses_nothing_and_assesses_nothing_twice(
    isolated_env: dict[str, str], start_service: StartService, db: AsyncEngine, producer: EventProducer
) -> None:
    env = {**isolated_env, "RISK_CONSUMER_BATCH_SIZE": "50"}
    reports = reports_for(600)
    first = await start(start_service, env)

    stream = asyncio.create_task(publish(producer, reports))
    at_kill = await wait_until(lambda: _at_least(db, 200), "a third of the reports assessed", every=0.05)
    first.kill()
    await stream
    await start(start_service, env)
    # The killed member keeps its partitions until its session times out (30 s), then the new one takes over.
    await wait_until(lambda: _at_least(db, len(reports)), "all reports assessed", timeout=90)

    assert at_kill < len(reports), "the kill came after the stream was done; nothing was tested"
    await assert_each_report_assessed_once(db, isolated_env, reports)


async def test_three_workers_one_killed_one_stopped_assess_every_report_once(
    isolated_env: dict[str, str], start_service: StartService, db: AsyncEngine, producer: EventProducer
) -> None:
    prefix = isolated_env["KAFKA_TOPIC_PREFIX"]
    reports = reports_for(900, enterprises=60)
    waves = [reports[:300], reports[300:600], reports[600:]]
    first = await start(start_service, isolated_env)
    await wait_until(lambda: _assigned(first, prefix), "the first worker's partitions")
    second = await start(start_service, isolated_env)
    await wait_until(lambda: _assigned(second, prefix), "the second worker's partitions")

    await publish(producer, waves[0])
    third = await start(start_service, isolated_env)
    await wait_until(lambda: _assigned(third, prefix), "the third worker's partitions")
    await publish(producer, waves[1])
    await asyncio.to_thread(second.kill)  # SIGKILL mid-stream: its partitions move once its session times out
    await asyncio.to_thread(first.stop)  # SIGTERM: leaves the group after its batch in flight
    await publish(producer, waves[2])
    await wait_until(lambda: _at_least(db, len(reports)), "all reports assessed")

    await assert_each_report_assessed_once(db, isolated_env, reports)
    for worker in (first, second, third):
        assert assessed_lines(worker) > 0, f"worker on port {worker.port} assessed nothing"


async def _at_least(db: AsyncEngine, count: int) -> int | None:
    value = int(await scalar(db, COUNT))
    return value if value >= count else None


async def _assigned(process: ServiceProcess, prefix: str) -> bool:
    return bool(assigned_report_partitions(process, prefix))
