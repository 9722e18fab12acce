"""`SessionDep` on real PostgreSQL: one transaction per request, committed BEFORE the response is sent.

A middleware looks at the database (through another connection) at the moment the response starts: every 2xx
must find its row already committed, and a request whose commit fails must not get a 2xx at all.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.db import session_factory
from shared.deps import SessionDep
from shared.http import Conflict, install_error_handlers

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

TABLE = "deps_probe"


class _SeenAtResponseStart:
    """Records, when each response starts, its status and whether the row it names is committed."""

    def __init__(self, app: ASGIApp, engine: AsyncEngine) -> None:
        self.app = app
        self.engine = engine
        self.seen: dict[str, tuple[int, bool]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        row_id = scope["path"].split("/")[2]

        async def observing_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                async with self.engine.connect() as connection:
                    found = await connection.scalar(text(f"SELECT count(*) FROM {TABLE} WHERE id = :id"),
                                                    {"id": row_id})
                self.seen[row_id] = (message["status"], found == 1)
            await send(message)

        await self.app(scope, receive, observing_send)


def _app(engine: AsyncEngine, observer_engine: AsyncEngine) -> tuple[ASGIApp, _SeenAtResponseStart]:
    app = FastAPI()
    install_error_handlers(app)
    app.state.context = SimpleNamespace(sessions=session_factory(engine), settings=SimpleNamespace(admin_token="x"))

    async def insert(session: SessionDep, row_id: str, tag: str | None = None) -> None:
        await session.execute(text(f"INSERT INTO {TABLE} (id, tag) VALUES (:id, :tag)"), {"id": row_id, "tag": tag})

    @app.post("/rows/{row_id}", status_code=201)
    async def create(row_id: str, session: SessionDep) -> dict[str, str]:
        await insert(session, row_id)
        return {"id": row_id}

    @app.post("/rows/{row_id}/then-conflict", status_code=201)
    async def create_then_fail(row_id: str, session: SessionDep) -> dict[str, str]:
        await insert(session, row_id)
        raise Conflict()

    @app.post("/rows/{row_id}/deferred-duplicate/{tag}", status_code=201)
    async def create_duplicate(row_id: str, tag: str, session: SessionDep) -> dict[str, str]:
        # The unique constraint is deferred: the violation surfaces only at COMMIT.
        await insert(session, row_id, tag)
        return {"id": row_id}

    @app.post("/rows/{row_id}/connection-lost", status_code=201)
    async def create_then_lose_connection(row_id: str, session: SessionDep) -> dict[str, str]:
        await insert(session, row_id)
        backend = await session.scalar(text("SELECT pg_backend_pid()"))
        async with observer_engine.connect() as other:
            await other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        return {"id": row_id}

    observed = _SeenAtResponseStart(app, observer_engine)
    return observed, observed


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def engines(database_url: str) -> AsyncIterator[tuple[AsyncEngine, AsyncEngine]]:
    engine = create_async_engine(database_url, pool_pre_ping=True)
    observer = create_async_engine(database_url)
    async with observer.begin() as connection:
        await connection.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))
        await connection.execute(text(
            f"CREATE TABLE {TABLE} (id text PRIMARY KEY, tag text, "
            f"CONSTRAINT {TABLE}_tag UNIQUE (tag) DEFERRABLE INITIALLY DEFERRED)"))
    yield engine, observer
    async with observer.begin() as connection:
        await connection.execute(text(f"DROP TABLE IF EXISTS {TABLE}"))
    await engine.dispose()
    await observer.dispose()


@pytest_asyncio.fixture(loop_scope="session")
async def client(engines: tuple[AsyncEngine, AsyncEngine]) -> AsyncIterator[
        tuple[httpx.AsyncClient, _SeenAtResponseStart]]:
    app, observed = _app(*engines)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http, observed


async def _committed(engines: tuple[AsyncEngine, AsyncEngine], row_id: str) -> bool:
    async with engines[1].connect() as connection:
        return await connection.scalar(text(f"SELECT count(*) FROM {TABLE} WHERE id = :id"), {"id": row_id}) == 1


async def test_a_2xx_is_sent_only_after_the_commit(client: tuple[httpx.AsyncClient, _SeenAtResponseStart]) -> None:
    http, observed = client
    row_id = uuid.uuid4().hex
    response = await http.post(f"/rows/{row_id}")
    assert response.status_code == 201
    assert observed.seen[row_id] == (201, True)


async def test_a_commit_that_loses_the_database_answers_503_not_2xx(
        client: tuple[httpx.AsyncClient, _SeenAtResponseStart], engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    http, observed = client
    row_id = uuid.uuid4().hex
    response = await http.post(f"/rows/{row_id}/connection-lost")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "dependency_unavailable"
    assert "Retry-After" in response.headers
    assert observed.seen[row_id] == (503, False)
    assert not await _committed(engines, row_id)


async def test_a_commit_refused_by_the_database_answers_500_not_2xx(
        client: tuple[httpx.AsyncClient, _SeenAtResponseStart], engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    http, _ = client
    tag = uuid.uuid4().hex
    first, second = uuid.uuid4().hex, uuid.uuid4().hex
    assert (await http.post(f"/rows/{first}/deferred-duplicate/{tag}")).status_code == 201
    response = await http.post(f"/rows/{second}/deferred-duplicate/{tag}")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert await _committed(engines, first)
    assert not await _committed(engines, second)


async def test_an_error_in_the_route_rolls_back(
        client: tuple[httpx.AsyncClient, _SeenAtResponseStart], engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    http, _ = client
    row_id = uuid.uuid4().hex
    response = await http.post(f"/rows/{row_id}/then-conflict")
    assert response.status_code == 409
    assert not await _committed(engines, row_id)


async def test_the_pool_recovers_after_a_lost_connection(
        client: tuple[httpx.AsyncClient, _SeenAtResponseStart], engines: tuple[AsyncEngine, AsyncEngine]) -> None:
    http, _ = client
    assert (await http.post(f"/rows/{uuid.uuid4().hex}/connection-lost")).status_code == 503
    row_id = uuid.uuid4().hex
    assert (await http.post(f"/rows/{row_id}")).status_code == 201
    assert await _committed(engines, row_id)
