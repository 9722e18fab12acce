"""Database outages are told apart from bugs: connection-class errors, pool timeouts and the SQLSTATEs of a
database that cannot serve answer 503 with Retry-After at the HTTP edge and are retried by consumers; a bug stays
a 500 without a trace (HTTP) and a message error (Kafka)."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, InterfaceError, InternalError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError

from shared.db import create_engine, is_database_unavailable, session_factory, transaction
from shared.http import create_service_app
from shared.kafka import is_transient, transient_retry_delay

pytestmark = pytest.mark.unit
async_test = pytest.mark.asyncio(loop_scope="session")


def wrapped(kind: type[Exception], error: Exception) -> Exception:
    """As SQLAlchemy raises it: the driver's error as `orig` (and as the cause)."""
    wrapper = kind("SELECT secret_parameter", {}, error)  # type: ignore[call-arg]
    wrapper.__cause__ = error
    return wrapper


UNAVAILABLE = [
    pytest.param(wrapped(OperationalError, asyncpg.exceptions.CannotConnectNowError("starting up")), id="57P03"),
    pytest.param(wrapped(OperationalError, asyncpg.exceptions.AdminShutdownError("shutdown")), id="57P01"),
    pytest.param(wrapped(OperationalError, asyncpg.exceptions.TooManyConnectionsError("full")), id="53300"),
    pytest.param(wrapped(InterfaceError, asyncpg.exceptions.ReadOnlySQLTransactionError("replica")), id="25006"),
    pytest.param(wrapped(OperationalError, asyncpg.exceptions.ConnectionDoesNotExistError("gone")), id="08003"),
    pytest.param(asyncpg.exceptions.ConnectionFailureError("raw 08006"), id="raw-08006"),
    pytest.param(PoolTimeoutError("QueuePool limit reached"), id="pool-timeout"),
    pytest.param(ConnectionRefusedError(111, "refused"), id="refused"),
    pytest.param(TimeoutError(), id="connect-timeout"),
    pytest.param(wrapped(InterfaceError, asyncpg.exceptions.InterfaceError("connection is closed")), id="interface"),
    pytest.param(asyncpg.exceptions._base.InternalClientError(
        "cannot switch to state 15; another operation (2) is in progress"), id="connection-mid-operation"),
    pytest.param(wrapped(InternalError, asyncpg.exceptions._base.InternalClientError(
        "cannot switch to state 12; another operation (2) is in progress")), id="connection-mid-operation-wrapped"),
]
BUGS = [
    pytest.param(wrapped(IntegrityError, asyncpg.exceptions.UniqueViolationError("dup")), id="23505"),
    pytest.param(wrapped(ProgrammingError, asyncpg.exceptions.UndefinedTableError("no table")), id="42P01"),
    pytest.param(ValueError("a bug"), id="value-error"),
]


@pytest.mark.parametrize("error", UNAVAILABLE)
def test_unavailable_database_errors_are_transient(error: Exception) -> None:
    assert is_database_unavailable(error)
    assert is_transient(error)


def test_serialization_failures_and_deadlocks_are_transient_but_not_outages() -> None:
    for driver_error in (asyncpg.exceptions.SerializationError("40001"), asyncpg.exceptions.DeadlockDetectedError("")):
        error = wrapped(OperationalError, driver_error)
        assert is_transient(error)
        assert not is_database_unavailable(error)


@pytest.mark.parametrize("error", BUGS)
def test_bugs_are_neither(error: Exception) -> None:
    assert not is_database_unavailable(error)
    assert not is_transient(error)


def test_transient_retries_back_off_up_to_half_a_minute() -> None:
    delays = [transient_retry_delay(failures) for failures in range(1, 10)]
    assert delays == sorted(delays)
    assert delays[0] == 1.0
    assert delays[-1] == 30.0


def _app_raising(error: Exception) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield

    app = create_service_app(title="t", description="t", version="1", lifespan=lifespan, checks=dict)

    @app.get("/boom")
    async def boom() -> None:
        raise error

    return app


async def _get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await client.get(path)


@pytest.mark.parametrize("error", UNAVAILABLE)
@async_test
async def test_unavailable_database_answers_503_with_retry_after(error: Exception) -> None:
    response = await _get(_app_raising(error), "/boom")
    assert response.status_code == 503
    assert int(response.headers["Retry-After"]) > 0
    assert response.json()["error"]["code"] == "dependency_unavailable"
    assert "secret_parameter" not in response.text


@pytest.mark.parametrize("error", BUGS)
@async_test
async def test_bugs_answer_a_plain_500(error: Exception) -> None:
    response = await _get(_app_raising(error), "/boom")
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "internal_error"
    assert "secret_parameter" not in response.text
    assert "Traceback" not in response.text


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@async_test
async def test_a_route_on_an_unreachable_database_answers_503_quickly_through_the_real_engine() -> None:
    engine = create_engine(f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/nowhere", pool_size=1,
                           connect_timeout=2, pool_timeout=2)
    sessions = session_factory(engine)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield

    app = create_service_app(title="t", description="t", version="1", lifespan=lifespan, checks=dict)

    @app.get("/v1/things")
    async def things() -> int:
        async with transaction(sessions) as session:
            return int((await session.execute(text("SELECT 1"))).scalar_one())

    try:
        response = await _get(app, "/v1/things")
    finally:
        await engine.dispose()
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"


@pytest.mark.integration
@async_test
async def test_sql_parameters_never_appear_in_database_errors(database_url: str) -> None:
    """`hide_parameters`: what a failing statement carried (report text, contact data) stays out of the error
    message, hence out of logs and dead-letter headers."""
    engine = create_engine(database_url, pool_size=1)
    secret = "张三 13800138000"
    try:
        async with engine.begin() as connection:
            await connection.execute(text("CREATE TEMPORARY TABLE hidden (name text PRIMARY KEY)"))
            await connection.execute(text("INSERT INTO hidden VALUES (:name)"), {"name": secret})
            with pytest.raises(IntegrityError) as raised:
                await connection.execute(text("INSERT INTO hidden VALUES (:name)"), {"name": secret})
    finally:
        await engine.dispose()
    assert "INSERT INTO hidden" in str(raised.value)
    assert secret not in str(raised.value)
    # A traceback in the log prints the chain too.
    assert all("13800138000" not in str(error) for error in (raised.value.orig, raised.value.__cause__))
