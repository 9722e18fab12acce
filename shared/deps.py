"""FastAPI dependencies every service shares: its running context and ONE database session per request.

How a service uses it (in its `api.py`):

    from shared.deps import SessionDep, service_context

    Context = Annotated[IntakeContext, Depends(service_context)]   # the service's typed context, one line

    @router.post("/things", status_code=201)
    async def create_thing(body: ThingCreate, session: SessionDep, caller: CallerDep) -> ThingCreated:
        thing = await service.create_thing(session, ...)          # services flush, never commit
        return ThingCreated(...)

`SessionDep` is one `AsyncSession` per request, in one transaction, shared by everything the request depends on:
the caller dependency (`shared.auth.caller_dependency`) and the route receive the same object, because FastAPI
caches a dependency per request. Always write `SessionDep` (never `Depends(request_session)` by hand): the cache
key includes the dependency's scope, and a second spelling would open a second session.

The edge commits. The session is a dependency with `yield` declared with `scope="function"`: FastAPI (0.12x and
later; checked on 0.165) runs the exit code of a function-scoped dependency right after the route function
returned and its response was built, and BEFORE the response is sent (the default "request" scope runs it after
the response went out, too late to change the answer). So:

- the route returned normally → commit; only when the commit succeeded does the client see the 2xx (intake's
  "once 202 is returned the report is durable" holds);
- the commit failed because the database is unreachable → `DependencyUnavailable` (503, JSON error shape,
  `Retry-After`); any other commit failure propagates and becomes the generic 500. Never a 2xx;
- the route (or another dependency) raised → rollback, and the error is answered as usual.

A route that never touches the session never opens a connection (the session begins lazily on first use).
The context is `request.app.state.context`, the dataclass each service's lifespan stores there (see
`services/*/context.py`); it must have `sessions` (a `shared.db.SessionFactory`) and `settings.admin_token`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import SessionFactory, is_database_unavailable
from shared.http import DependencyUnavailable

log = logging.getLogger(__name__)


class AdminTokenSettings(Protocol):
    @property
    def admin_token(self) -> str: ...


class ServiceContext(Protocol):
    """What `shared.deps` and `shared.auth` need from a service's running context."""

    @property
    def sessions(self) -> SessionFactory: ...

    @property
    def settings(self) -> AdminTokenSettings: ...


def service_context(request: Request) -> Any:
    """The running context of the service that answers `request` (`app.state.context`); typed by the service's
    own alias, e.g. `Context = Annotated[IntakeContext, Depends(service_context)]`."""
    return request.app.state.context


async def request_context(request: Request) -> Any:
    """`service_context` as an async dependency: FastAPI runs a plain `def` dependency in its threadpool (a thread
    hop and two lock round trips per request, measured at ~10 % of intake's CPU), an `async def` one inline.
    Prefer it on hot routes: `Context = Annotated[IntakeContext, Depends(request_context)]`."""
    return request.app.state.context


async def request_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session and one transaction for the request; committed before the response is sent. Use `SessionDep`."""
    factory: SessionFactory = service_context(request).sessions
    async with factory() as session:
        try:
            yield session
        except BaseException:
            # The route's error is the one to answer with; a rollback failing on a dead connection must not
            # replace it (closing the session discards that connection anyway).
            with contextlib.suppress(Exception):
                await session.rollback()
            raise
        try:
            await session.commit()
        except Exception as error:
            if not is_database_unavailable(error):
                raise
            log.warning("commit failed: database unreachable (%s)", type(error).__name__)
            raise DependencyUnavailable() from error


SessionDep = Annotated[AsyncSession, Depends(request_session, scope="function")]
"""The request's session. Exit (commit/rollback) runs before the response is sent: see the module docstring."""
