"""The risk service in-process (its real lifespan: migrations and the consumer) on real Kafka and PostgreSQL,
with a database and topics of its own, plus helpers to feed it events and read what it stored."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.risk.app import create_app
from services.risk.settings import RiskSettings
from shared.events import EventBase, Topic
from shared.kafka import EventProducer
from tests.conftest import ADMIN_TOKEN, Infra, fresh_database, fresh_topic_prefix

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def risk_settings(env: dict[str, str], **overrides: Any) -> RiskSettings:
    values: dict[str, Any] = {
        "environment": "test", "database_url": env["DATABASE_URL"],
        "kafka_bootstrap_servers": env["KAFKA_BOOTSTRAP_SERVERS"], "kafka_topic_prefix": env["KAFKA_TOPIC_PREFIX"],
        "admin_token": ADMIN_TOKEN,
    }
    return RiskSettings(**{**values, **overrides})


@asynccontextmanager
async def running_risk(settings: RiskSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://risk") as client:
            yield client


@dataclass
class RiskWorld:
    """One risk service with its own database and topics, and what tests need around it."""

    env: dict[str, str]
    client: httpx.AsyncClient
    db: AsyncEngine
    producer: EventProducer

    async def publish(self, topic: Topic, *events: EventBase) -> None:
        await self.producer.send_events([(topic.value, event) for event in events])

    async def publish_raw(self, topic: Topic, value: bytes, key: bytes = b"poison") -> None:
        await self.producer.send_raw([(self.producer.topic(topic.value), key, value, [])])

    async def scalar(self, sql: str, **params: Any) -> Any:
        async with self.db.connect() as connection:
            return (await connection.execute(text(sql), params)).scalar()

    async def wait_until(self, sql: str, predicate: Callable[[Any], bool], timeout: float = 30.0,
                         **params: Any) -> Any:
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = await self.scalar(sql, **params)
            if predicate(value):
                return value
            await asyncio.sleep(0.2)
        pytest.fail(f"timed out waiting on {sql!r} (last value {value!r})")


@pytest.fixture(scope="module")
def risk_env(infra: Infra) -> Any:
    with fresh_database(infra) as url:
        yield {"DATABASE_URL": url, "KAFKA_BOOTSTRAP_SERVERS": infra.kafka_bootstrap_servers,
               "KAFKA_TOPIC_PREFIX": fresh_topic_prefix(infra.kafka_bootstrap_servers)}


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def risk(risk_env: dict[str, str]) -> AsyncIterator[RiskWorld]:
    producer = EventProducer(risk_env["KAFKA_BOOTSTRAP_SERVERS"], client_id="risk-tests",
                             topic_prefix=risk_env["KAFKA_TOPIC_PREFIX"])
    db = create_async_engine(risk_env["DATABASE_URL"])
    async with running_risk(risk_settings(risk_env)) as client:
        yield RiskWorld(risk_env, client, db, producer)
    await producer.stop()
    await db.dispose()
