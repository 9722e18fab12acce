"""Async SQLAlchemy plumbing: one engine per process, one transaction per request or Kafka batch.

Services and repositories only flush; `transaction()` (the edge) commits or rolls back.

The engine never waits without bound: connecting, each statement and waiting for a pooled connection all have
timeouts, so that a database outage turns into quick errors (503 at the HTTP edge, a retried batch in consumers)
instead of piled-up requests. SQL parameters are hidden from error messages (`hide_parameters`), so that report
contents never reach logs or dead-letter headers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

SessionFactory = async_sessionmaker[AsyncSession]

DEFAULT_CONNECT_TIMEOUT = 5.0
DEFAULT_COMMAND_TIMEOUT = 30.0
DEFAULT_POOL_TIMEOUT = 5.0


def create_engine(
    database_url: str,
    *,
    pool_size: int = 10,
    max_overflow: int | None = None,
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
    pool_timeout: float = DEFAULT_POOL_TIMEOUT,
) -> AsyncEngine:
    engine = create_async_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size if max_overflow is None else max_overflow,
        # No `pool_pre_ping`: it costs a round trip per checkout (per request). Dead connections are caught instead
        # by `_discard_closed_connections` (free) and by SQLAlchemy's disconnect handling (below).
        pool_pre_ping=False,
        pool_recycle=POOL_RECYCLE_SECONDS,
        pool_timeout=pool_timeout,
        hide_parameters=True,
        # asyncpg: `timeout` bounds establishing a connection, `command_timeout` every statement.
        connect_args={"timeout": connect_timeout, "command_timeout": command_timeout},
    )
    event.listen(engine.sync_engine, "checkout", _discard_closed_connections)
    return engine


# How a PostgreSQL restart (or a killed backend) is survived without a ping per checkout:
# - a server that shuts down or terminates a backend sends a FATAL message and closes the socket; asyncpg sees the
#   EOF on its event loop and marks the connection closed. `_discard_closed_connections` checks that flag (no round
#   trip) at every checkout and makes the pool replace such a connection (DisconnectionError → a new connection);
# - a connection that died silently (network cut, no FIN) fails on its first statement; SQLAlchemy then sees a
#   disconnect error, invalidates that connection AND marks every older pooled one stale (`Pool._invalidate`), so
#   one failed request (answered 503, see shared.http) resets the whole pool;
# - `pool_recycle` replaces connections older than this, so that a pool never holds very old sessions.
POOL_RECYCLE_SECONDS = 600


def _discard_closed_connections(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
    driver = getattr(dbapi_connection, "driver_connection", None)
    is_closed = getattr(driver, "is_closed", None)
    if is_closed is not None and is_closed():
        raise DisconnectionError("connection closed by the server")


def session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


@asynccontextmanager
async def transaction(factory: SessionFactory) -> AsyncIterator[AsyncSession]:
    """One unit of work: commits when the block succeeds, rolls back when it raises."""
    async with factory() as session, session.begin():
        yield session


async def ping(engine: AsyncEngine) -> None:
    async with engine.connect() as connection:
        await connection.execute(text("SELECT 1"))


# SQLSTATE classes and codes that say "the database cannot serve now", not "this statement is wrong":
# 08 connection exception, 53 insufficient resources (too many connections, disk full), 57 operator intervention
# (admin shutdown, cannot connect now: starting up), 25006 read-only transaction (a replica after a failover).
UNAVAILABLE_SQLSTATE_CLASSES = ("08", "53", "57")
UNAVAILABLE_SQLSTATES = ("25006",)
# 40 transaction rollback (serialization failure, deadlock): retrying the same work succeeds.
RETRYABLE_SQLSTATE_CLASSES = ("40",)


def sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of a database error, wrapped by SQLAlchemy or raw from asyncpg; None when it has none."""
    for cause in _chain(error):
        code = getattr(cause, "sqlstate", None) or getattr(cause, "pgcode", None)
        if isinstance(code, str) and len(code) == 5:
            return code
    return None


def is_database_unavailable(error: BaseException) -> bool:
    """True when `error` means the database is unreachable, overloaded, starting, shutting down or read-only:
    connection-class errors, pool timeouts and the SQLSTATEs above. Bugs (syntax, constraint) are not."""
    if isinstance(error, PoolTimeoutError | InterfaceError | ConnectionError | OSError | TimeoutError):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    code = sqlstate(error)
    if code is not None:
        return code[:2] in UNAVAILABLE_SQLSTATE_CLASSES or code in UNAVAILABLE_SQLSTATES
    if isinstance(error, OperationalError):
        return True
    # InternalClientError ("cannot switch to state 15; another operation (2) is in progress"): a pooled connection
    # left mid-operation when the server terminated its session (a database stopping); seen once under load while
    # PostgreSQL was stopped (the chaos suite). The connection is unusable, not the statement wrong: the caller
    # discards it (the group-commit writer does) and the request gets a 503.
    return any(isinstance(cause, asyncpg.exceptions.InterfaceError | asyncpg.exceptions.ConnectionDoesNotExistError
                          | asyncpg.exceptions._base.InternalClientError) for cause in _chain(error))


def _chain(error: BaseException) -> list[BaseException]:
    """`error` and what it wraps (SQLAlchemy's `orig`, or the cause), outermost first."""
    seen: set[int] = set()
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append(current)
        current = getattr(current, "orig", None) or current.__cause__
    return chain


def is_transient_database_error(error: BaseException) -> bool:
    """Unavailable, or a transaction rollback (class 40) that succeeds when the work is retried."""
    if is_database_unavailable(error):
        return True
    code = sqlstate(error)
    return code is not None and code[:2] in RETRYABLE_SQLSTATE_CLASSES
