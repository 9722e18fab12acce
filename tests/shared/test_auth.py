"""The one bearer authentication: admin token, principals looked up by token hash, 401/403 semantics, and the
OpenAPI bearer scheme. No database: the session is opened lazily and the fake lookups never use it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import Depends, FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from shared.auth import (
    ADMIN,
    Caller,
    admin_dependency,
    caller_dependency,
    hash_token,
    require_admin,
)
from shared.deps import SessionDep
from shared.http import install_error_handlers

pytestmark = pytest.mark.unit

ADMIN_TOKEN = "unit-admin-token-0123456789"
PRINCIPALS = {hash_token("unit_alice"): "alice-id"}  # an active principal; `unit_gone` is deactivated
INACTIVE = {hash_token("unit_gone")}


def _app() -> tuple[FastAPI, list[str], list[AsyncSession]]:
    rejected: list[str] = []
    seen: list[AsyncSession] = []

    async def lookup(session: AsyncSession, token_hash: str) -> str | None:
        seen.append(session)
        return None if token_hash in INACTIVE else PRINCIPALS.get(token_hash)

    get_caller = caller_dependency(lookup, on_rejected=lambda: rejected.append("401"))
    app = FastAPI()
    install_error_handlers(app)
    # Never connects: the fake lookups do not touch the session, and an unused session opens no connection.
    engine = create_async_engine("postgresql+asyncpg://nobody@127.0.0.1:9/none")
    app.state.context = SimpleNamespace(sessions=async_sessionmaker(engine), settings=SimpleNamespace(
        admin_token=ADMIN_TOKEN))

    @app.get("/who")
    async def who(session: SessionDep, caller: Caller = Depends(get_caller)) -> dict[str, Any]:
        return {"admin": caller.is_admin, "unit_id": caller.unit_id, "body_id": caller.body_id,
                "same_session": all(s is session for s in seen)}

    @app.get("/admin-area", dependencies=[Depends(admin_dependency(get_caller))])
    async def admin_area() -> dict[str, str]:
        return {"ok": "yes"}

    @app.get("/risk-admin", dependencies=[Depends(require_admin)])
    async def risk_admin() -> dict[str, str]:
        return {"ok": "yes"}

    return app, rejected, seen


@pytest_asyncio.fixture
async def client() -> AsyncIterator[tuple[httpx.AsyncClient, list[str], list[AsyncSession]]]:
    app, rejected, seen = _app()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as http:
        yield http, rejected, seen


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_caller_names() -> None:
    assert ADMIN.is_admin
    assert ADMIN.unit_id is None
    assert ADMIN.body_id is None
    unit = Caller("u-1")
    assert not unit.is_admin
    assert unit.unit_id == "u-1"
    assert unit.body_id == "u-1"


@pytest.mark.asyncio
async def test_admin_token_is_the_admin(client: Any) -> None:
    http, _, _ = client
    response = await http.get("/who", headers=_bearer(ADMIN_TOKEN))
    assert response.status_code == 200
    assert response.json() == {"admin": True, "unit_id": None, "body_id": None, "same_session": True}


@pytest.mark.asyncio
async def test_principal_is_found_by_token_hash_in_the_routes_session(client: Any) -> None:
    http, _, seen = client
    response = await http.get("/who", headers=_bearer("unit_alice"))
    assert response.status_code == 200, response.text
    assert response.json() == {"admin": False, "unit_id": "alice-id", "body_id": "alice-id", "same_session": True}
    assert len(seen) == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("headers", [
    {}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer "}, _bearer("unit_nobody"), _bearer("unit_gone"),
    _bearer(ADMIN_TOKEN + "x"),
])
async def test_missing_unknown_or_inactive_token_is_401_in_the_error_shape(
        client: Any, headers: dict[str, str]) -> None:
    http, rejected, _ = client
    response = await http.get("/who", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"
    assert set(response.json()["error"]) == {"code", "message", "details"}
    assert rejected == ["401"]


@pytest.mark.asyncio
async def test_admin_dependency(client: Any) -> None:
    http, _, _ = client
    assert (await http.get("/admin-area", headers=_bearer(ADMIN_TOKEN))).status_code == 200
    assert (await http.get("/admin-area")).status_code == 401
    assert (await http.get("/admin-area", headers=_bearer("unit_nobody"))).status_code == 401
    forbidden = await http.get("/admin-area", headers=_bearer("unit_alice"))
    assert forbidden.status_code == 403
    assert forbidden.json()["error"]["code"] == "forbidden"


@pytest.mark.asyncio
async def test_require_admin_without_principals(client: Any) -> None:
    http, _, _ = client
    assert (await http.get("/risk-admin", headers=_bearer(ADMIN_TOKEN))).status_code == 200
    missing = await http.get("/risk-admin")
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "unauthorized"
    wrong = await http.get("/risk-admin", headers=_bearer("not-the-admin"))
    assert wrong.status_code == 403
    assert wrong.json()["error"]["code"] == "forbidden"


def test_openapi_has_the_bearer_scheme_and_protected_routes_use_it() -> None:
    app, _, _ = _app()
    spec = app.openapi()
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["bearer"][
            "description"]}
    for path in ("/who", "/admin-area", "/risk-admin"):
        assert spec["paths"][path]["get"]["security"] == [{"bearer": []}], path
