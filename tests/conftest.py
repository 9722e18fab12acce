"""Fixtures for tests on real servers: Kafka and PostgreSQL from testcontainers when a Docker engine answers, from
the native harness otherwise (`TEST_INFRA=docker|native|auto`, see tests/support/infra.py), a fresh database and a
fresh topic prefix per test session so that runs never see each other's data, and the services as real processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

from shared.kafka import delete_prefixed_topics, ensure_topics
from tests.support.infra import Infra, choose_backend, start_infra
from tests.support.processes import ServiceProcess

__all__ = ["ADMIN_TOKEN", "Infra", "KafkaReader", "StartService", "fresh_database", "fresh_topic_prefix",
           "make_service_env"]

ADMIN_TOKEN = "test-admin-token-0123456789abcdefghij"
CONTACT_KEY = Fernet.generate_key().decode()
ALERTS_SECRET_KEY = Fernet.generate_key().decode()


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    """Kafka and PostgreSQL, started once per test session (and stopped if this session started them)."""
    backend = choose_backend()
    with contextlib.ExitStack() as stack:
        try:
            started = stack.enter_context(start_infra(backend))
        except RuntimeError as error:
            pytest.fail(f"{backend} infrastructure did not start: {error}")
        yield started
        # A broker the harness keeps running between sessions would otherwise keep every session's topics (six
        # partitions each, a few files open per partition) until it runs out of file descriptors.
        with contextlib.suppress(Exception):
            asyncio.run(delete_prefixed_topics(started.kafka_bootstrap_servers, CREATED_PREFIXES))


def _asyncpg_dsn(sqlalchemy_url: str) -> str:
    return make_url(sqlalchemy_url).set(drivername="postgresql").render_as_string(hide_password=False)


async def _admin_sql(infra: Infra, sql: str) -> None:
    connection = await asyncpg.connect(_asyncpg_dsn(infra.database_url))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextlib.contextmanager
def fresh_database(infra: Infra) -> Iterator[str]:
    """A new, empty database on the test cluster, dropped afterwards; yields its SQLAlchemy URL."""
    name = f"test_{uuid.uuid4().hex[:10]}"
    asyncio.run(_admin_sql(infra, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(infra.database_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(_admin_sql(infra, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


CREATED_PREFIXES: list[str] = []
"""The topic prefixes this test session created: their topics are deleted when the session ends (`infra`)."""


def fresh_topic_prefix(kafka_bootstrap: str) -> str:
    """A new topic prefix with the contract topics created under it (deleted at the end of the session)."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    CREATED_PREFIXES.append(prefix)
    asyncio.run(ensure_topics(kafka_bootstrap, prefix))
    return prefix


@pytest.fixture(scope="session")
def database_url(infra: Infra) -> Iterator[str]:
    """A database of its own for this test session."""
    with fresh_database(infra) as url:
        yield url


@pytest.fixture(scope="session")
def kafka_bootstrap(infra: Infra) -> str:
    return infra.kafka_bootstrap_servers


@pytest.fixture(scope="session")
def topic_prefix(kafka_bootstrap: str) -> str:
    """A topic prefix of its own for this test session; the contract topics are created under it."""
    return fresh_topic_prefix(kafka_bootstrap)


def make_service_env(database_url: str, kafka_bootstrap: str, topic_prefix: str) -> dict[str, str]:
    return {
        "ENVIRONMENT": "test",
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "KAFKA_TOPIC_PREFIX": topic_prefix,
        "ADMIN_TOKEN": ADMIN_TOKEN,
        "INTAKE_CONTACT_KEY": CONTACT_KEY,
        "ALERTS_SECRET_KEY": ALERTS_SECRET_KEY,
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture
def isolated_env(infra: Infra) -> Iterator[dict[str, str]]:
    """Service environment with a database and topics of its own, for tests that must see no other traffic."""
    with fresh_database(infra) as url:
        yield make_service_env(url, infra.kafka_bootstrap_servers, fresh_topic_prefix(infra.kafka_bootstrap_servers))


@pytest.fixture(scope="session")
def service_env(database_url: str, kafka_bootstrap: str, topic_prefix: str) -> dict[str, str]:
    """Environment for running the services (as processes or in-process settings)."""
    return make_service_env(database_url, kafka_bootstrap, topic_prefix)


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("service-logs")


@pytest.fixture
def start_service(service_env: dict[str, str], log_dir: Path) -> Iterator[StartService]:
    """Start services as real processes; every one started is stopped after the test."""
    started: list[ServiceProcess] = []

    def start(name: str, *, ready_path: str = "/readyz", **env: str) -> ServiceProcess:
        process = ServiceProcess(name, {**service_env, **env}, log_dir)
        started.append(process)
        return process.start(ready_path=ready_path)

    yield start
    for process in reversed(started):
        process.stop()


class StartService:
    def __call__(self, name: str, *, ready_path: str = "/readyz", **env: str) -> ServiceProcess: ...


@pytest_asyncio.fixture(loop_scope="session")
async def kafka_reader(kafka_bootstrap: str, topic_prefix: str) -> AsyncIterator[KafkaReader]:
    reader = KafkaReader(kafka_bootstrap, topic_prefix)
    yield reader


class KafkaReader:
    """Reads whole topics from the beginning, outside any consumer group, to check what is on them."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix

    async def read_all(self, topic: str, *, idle_ms: int = 1500) -> list[object]:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(
            f"{self.prefix}{topic}", bootstrap_servers=self.bootstrap, group_id=None,
            auto_offset_reset="earliest", enable_auto_commit=False, isolation_level="read_committed",
        )
        await consumer.start()
        records: list[object] = []
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=idle_ms)
                if not batch:
                    break
                for tp_records in batch.values():
                    records.extend(tp_records)
        finally:
            await consumer.stop()
        return records


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests that use the real-server fixtures are integration tests unless marked otherwise."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if names & {"infra", "database_url", "service_env", "start_service", "isolated_env"} and not any(
            item.iter_markers(name) for name in ("integration", "e2e", "browser")
        ):
            item.add_marker(pytest.mark.integration)


os.environ.setdefault("ENVIRONMENT", "test")
