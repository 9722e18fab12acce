"""Intake running in-process (its real lifespan: migrations, relay, status consumer) on real Kafka and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest_asyncio
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from tests.conftest import ADMIN_TOKEN

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def intake_settings(service_env: dict[str, str], **overrides: Any) -> IntakeSettings:
    values: dict[str, Any] = {
        "environment": "test",
        "database_url": service_env["DATABASE_URL"],
        "kafka_bootstrap_servers": service_env["KAFKA_BOOTSTRAP_SERVERS"],
        "kafka_topic_prefix": service_env["KAFKA_TOPIC_PREFIX"],
        "admin_token": ADMIN_TOKEN,
        "contact_key": service_env["INTAKE_CONTACT_KEY"],
        "relay_idle_seconds": 0.1,
    }
    return IntakeSettings(**{**values, **overrides})


@asynccontextmanager
async def running_intake(settings: IntakeSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://intake") as client:
            yield client


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def intake(service_env: dict[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    async with running_intake(intake_settings(service_env)) as client:
        yield client


@pytest_asyncio.fixture(loop_scope="session", scope="session")
async def intake_db(service_env: dict[str, str]) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(service_env["DATABASE_URL"])
    yield engine
    await engine.dispose()


NewUnit = Callable[..., Awaitable[dict[str, str]]]


@pytest_asyncio.fixture(loop_scope="session")
async def new_unit(intake: httpx.AsyncClient) -> NewUnit:
    """Register a reporting unit; returns its id, key and ready-made auth headers."""

    async def create(name: str = "鼓楼区某街道工会", region_code: str = "320106") -> dict[str, str]:
        response = await intake.post("/v1/units", json={"name": name, "region_code": region_code}, headers=ADMIN)
        assert response.status_code == 201, response.text
        body: dict[str, str] = response.json()
        return {**body, "auth": f"Bearer {body['api_key']}"}

    return create


async def count_rows(engine: AsyncEngine, table: str) -> int:
    async with engine.connect() as connection:
        return int((await connection.execute(text(f"SELECT count(*) FROM intake.{table}"))).scalar_one())
