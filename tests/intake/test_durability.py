"""Once intake says 202 the report reaches Kafka, whether the broker was down or the process was killed.

These tests run intake as a real process with a database and topics of their own, so that no other relay can
publish their rows and what is on the topic is exactly what they submitted.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from shared.events import ReportAccepted, Topic
from tests.conftest import ADMIN_TOKEN, StartService
from tests.factories import make_report_body

pytestmark = pytest.mark.integration

UNREACHABLE_KAFKA = "127.0.0.1:9"  # the discard port: nothing answers Kafka there
PERSONAL = {"name": "赵六隐私", "phone": "13700001111"}


def _register_unit(base_url: str) -> str:
    response = httpx.post(f"{base_url}/v1/units", json={"name": "测试工会", "region_code": "320102"},
                          headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
    assert response.status_code == 201, response.text
    return f"Bearer {response.json()['api_key']}"


def _submit(base_url: str, auth: str, count: int) -> list[str]:
    ids = []
    with httpx.Client(base_url=base_url, headers={"Authorization": auth}, timeout=10) as client:
        for n in range(count):
            response = client.post("/v1/reports", json=make_report_body(workers_involved=n + 1, contact=PERSONAL))
            assert response.status_code == 202, response.text
            ids.append(response.json()["report_id"])
    return ids


def _published(env: dict[str, str], expected: set[str], timeout: float = 30.0) -> Counter[str]:
    """How many times each report id is on reports.v1 (waits until all expected ids are there)."""

    async def read() -> Counter[str]:
        consumer = AIOKafkaConsumer(
            f"{env['KAFKA_TOPIC_PREFIX']}{Topic.reports}", bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
            group_id=None, auto_offset_reset="earliest", enable_auto_commit=False,
        )
        await consumer.start()
        counts: Counter[str] = Counter()
        event_ids: dict[str, set[str]] = {}
        deadline = asyncio.get_running_loop().time() + timeout
        try:
            while asyncio.get_running_loop().time() < deadline:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    for record in records:
                        assert b"contact" not in record.value
                        event = ReportAccepted.model_validate_json(record.value)
                        counts[event.report_id] += 1
                        event_ids.setdefault(event.report_id, set()).add(str(event.event_id))
                if not batch and expected <= set(counts):
                    break
        finally:
            await consumer.stop()
        # A copy published twice after a crash carries the same event id, so consumers can drop it.
        assert all(len(ids) == 1 for ids in event_ids.values())
        return counts

    return asyncio.run(read())


def _health_once_checked(url: str) -> dict[str, Any]:
    """/healthz answers at once with the last known state; ask until a check made during the outage is in."""
    body: dict[str, Any] = {}
    for _ in range(50):
        body = httpx.get(f"{url}/healthz", timeout=10).json()
        if body["checks"].get("kafka") == "unavailable":
            break
        time.sleep(0.2)
    return body


def test_reports_accepted_while_kafka_is_down_are_published_once_it_is_back(
    start_service: StartService, isolated_env: dict[str, str]
) -> None:
    down = start_service("intake", **{**isolated_env, "KAFKA_BOOTSTRAP_SERVERS": UNREACHABLE_KAFKA},
                         ready_path="/healthz", INTAKE_RELAY_IDLE_SECONDS="0.1")
    auth = _register_unit(down.url)
    readiness = httpx.get(f"{down.url}/readyz", timeout=10)
    health = _health_once_checked(down.url)

    report_ids = _submit(down.url, auth, 5)
    down.stop()
    up = start_service("intake", **isolated_env, INTAKE_RELAY_IDLE_SECONDS="0.1")

    # Kafka is not needed for readiness (the outbox absorbs the outage); /healthz tells it is down.
    assert readiness.status_code == 200
    assert readiness.json()["checks"] == {"database": "ok"}
    assert health["checks"] == {"database": "ok", "kafka": "unavailable"}
    counts = _published(isolated_env, set(report_ids))
    assert {report_id: counts[report_id] for report_id in report_ids} == dict.fromkeys(report_ids, 1)
    assert set(counts) == set(report_ids)
    for process in (down, up):
        log = process.log_text()
        assert PERSONAL["name"] not in log
        assert PERSONAL["phone"] not in log


def test_reports_answered_202_survive_a_sigkill_of_intake(
    start_service: StartService, isolated_env: dict[str, str]
) -> None:
    first = start_service("intake", **isolated_env)
    auth = _register_unit(first.url)

    report_ids = _submit(first.url, auth, 40)
    first.kill()  # right after the last 202: some rows are published, some not, one batch maybe half-way
    second = start_service("intake", **isolated_env)

    counts = _published(isolated_env, set(report_ids))
    assert set(report_ids) <= set(counts)
    assert set(counts) == set(report_ids)
    assert "report accepted" in first.log_text()
    assert PERSONAL["name"] not in first.log_text() + second.log_text()
