"""The alerts service in-process (its real lifespan: migrations, consumer, relay, delivery and escalation workers)
on real Kafka and PostgreSQL, with a database and topics of its own per test module."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.alerts.app import create_app
from services.alerts.settings import AlertsSettings
from services.risk.scoring.engine import score_report
from services.risk.scoring.rubric import load_rubric
from shared.events import ReportAssessed, Topic
from shared.kafka import EventProducer
from shared.report import Report
from tests.conftest import ADMIN_TOKEN, ALERTS_SECRET_KEY, Infra, fresh_database, fresh_topic_prefix
from tests.factories import make_report_body

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
RUBRIC = load_rubric()


def make_assessed(**overrides: Any) -> ReportAssessed:
    """A `report.assessed` event scored by the real task7-v1 rubric."""
    body = make_report_body(**overrides)
    body.pop("contact", None)
    report = Report.model_validate(body)
    outcome = score_report(RUBRIC, report)
    report_id = str(uuid.uuid4())
    now = datetime.now(UTC)
    return ReportAssessed(
        trace_id=report_id, report_id=report_id, accepted_at=now, report=report, score=outcome.score,
        level=outcome.level, rubric_version=outcome.rubric_version, reasons=list(outcome.reasons), assessed_at=now,
        ack_deadline_seconds=RUBRIC.ack_deadline_seconds(outcome.level),
    )


@asynccontextmanager
async def running_alerts(settings: AlertsSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://alerts") as client:
            yield client


@dataclass
class AlertsWorld:
    env: dict[str, str]
    client: httpx.AsyncClient
    db: AsyncEngine
    producer: EventProducer

    async def publish(self, *events: ReportAssessed) -> None:
        await self.producer.send_events([(Topic.assessments.value, event) for event in events])

    async def body(self, *, kind: str = "union", level: str = "county", region_code: str = "320106",
                   channels: list[dict[str, Any]] | None = None, name: str | None = None) -> dict[str, str]:
        response = await self.client.post("/v1/bodies", headers=ADMIN, json={
            "name": name or f"{region_code} {level} {kind}", "kind": kind, "level": level,
            "region_code": region_code, "channels": channels or [{"type": "email", "address": "ops@example.org"}],
        })
        assert response.status_code == 201, response.text
        created: dict[str, str] = response.json()
        return {**created, "auth": f"Bearer {created['token']}"}

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.db.connect() as connection:
            return (await connection.execute(text(sql), params)).scalar()

    async def rows(self, sql: str, **params: Any) -> list[Any]:
        async with self.db.connect() as connection:
            return list((await connection.execute(text(sql), params)).all())

    async def wait_for(self, probe: Callable[[], Awaitable[Any]], *, timeout: float = 30.0, what: str = "") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = await probe()
            if value:
                return value
            await asyncio.sleep(0.1)
        pytest.fail(f"timed out waiting for {what}")

    async def alert_for(self, report_id: str) -> dict[str, Any]:
        async def probe() -> Any:
            alert_id = await self.scalar("SELECT id FROM alerts.alerts WHERE report_ids ? :r", r=report_id)
            return alert_id and (await self.client.get(f"/v1/alerts/{alert_id}", headers=ADMIN)).json()

        result: dict[str, Any] = await self.wait_for(probe, what=f"an alert with report {report_id}")
        return result

    async def processed(self, event: ReportAssessed) -> None:
        await self.wait_for(lambda: self.scalar("SELECT 1 FROM alerts.processed_events WHERE event_id = :e",
                                                e=str(event.event_id)), what="event processed")


async def when(awaitable: Awaitable[Any], predicate: Callable[[Any], bool]) -> Any:
    """The awaited value if it satisfies `predicate`, else None: a probe for `AlertsWorld.wait_for`."""
    value = await awaitable
    return value if predicate(value) else None


def alerts_settings(env: dict[str, str], **overrides: Any) -> AlertsSettings:
    values: dict[str, Any] = {
        "environment": "test", "database_url": env["DATABASE_URL"],
        "kafka_bootstrap_servers": env["KAFKA_BOOTSTRAP_SERVERS"], "kafka_topic_prefix": env["KAFKA_TOPIC_PREFIX"],
        "admin_token": ADMIN_TOKEN, "delivery_poll_seconds": 0.1, "retry_base_seconds": 0.2,
        "retry_max_seconds": 1.0, "escalation_poll_seconds": 0.2, "smtp_port": 9,
        "secret_key": ALERTS_SECRET_KEY,
    }
    return AlertsSettings(**{**values, **overrides})


@pytest.fixture(scope="module")
def alerts_env(infra: Infra) -> Any:
    with fresh_database(infra) as url:
        yield {"DATABASE_URL": url, "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
               "KAFKA_TOPIC_PREFIX": fresh_topic_prefix(infra.kafka_bootstrap_servers)}


@asynccontextmanager
async def alerts_world(env: dict[str, str], **overrides: Any) -> AsyncIterator[AlertsWorld]:
    producer = EventProducer(env["KAFKA_BOOTSTRAP_SERVERS"], client_id="alerts-tests",
                             topic_prefix=env["KAFKA_TOPIC_PREFIX"])
    db = create_async_engine(env["DATABASE_URL"])
    try:
        async with running_alerts(alerts_settings(env, **overrides)) as client:
            yield AlertsWorld(env, client, db, producer)
    finally:
        await producer.stop()
        await db.dispose()


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def alerts(alerts_env: dict[str, str]) -> AsyncIterator[AlertsWorld]:
    async with alerts_world(alerts_env) as world:
        yield world
