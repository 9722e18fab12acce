"""Unit keys rotated and revoked by the admin (the old key refused at once), failed authentication rate-limited per
client address, and inputs PostgreSQL cannot store (NUL) or should not be asked to read (a huge cursor) refused
with 422: intake in-process on real PostgreSQL and Kafka."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from services.intake import repository
from services.intake.app import create_app
from services.intake.repository import enterprise_lock_key
from shared.db import session_factory
from tests.conftest import ADMIN_TOKEN
from tests.factories import credit_code, make_report_body
from tests.intake.conftest import ADMIN, NewUnit, intake_settings

pytestmark = pytest.mark.integration


def _auth(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.asyncio(loop_scope="session")
async def test_rotating_a_key_refuses_the_old_one_at_once(intake: httpx.AsyncClient, new_unit: NewUnit) -> None:
    unit = await new_unit()
    assert (await intake.get("/v1/reports", headers=_auth(unit["api_key"]))).status_code == 200

    rotated = await intake.post(f"/v1/units/{unit['unit_id']}/key", headers=ADMIN)
    assert rotated.status_code == 200, rotated.text
    body = rotated.json()
    assert body["unit_id"] == unit["unit_id"]
    assert body["api_key"] != unit["api_key"]
    assert body["api_key"].startswith("unit_")

    assert (await intake.get("/v1/reports", headers=_auth(unit["api_key"]))).status_code == 401
    assert (await intake.post("/v1/reports", json=make_report_body(),
                              headers=_auth(unit["api_key"]))).status_code == 401
    assert (await intake.get("/v1/reports", headers=_auth(body["api_key"]))).status_code == 200


@pytest.mark.asyncio(loop_scope="session")
async def test_revoking_a_key_deactivates_the_unit_and_a_new_key_brings_it_back(
        intake: httpx.AsyncClient, new_unit: NewUnit) -> None:
    unit = await new_unit()
    revoked = await intake.delete(f"/v1/units/{unit['unit_id']}/key", headers=ADMIN)
    assert revoked.status_code == 204, revoked.text
    assert (await intake.get("/v1/reports", headers=_auth(unit["api_key"]))).status_code == 401
    assert (await intake.post("/v1/reports", json=make_report_body(),
                              headers=_auth(unit["api_key"]))).status_code == 401

    issued = await intake.post(f"/v1/units/{unit['unit_id']}/key", headers=ADMIN)
    assert issued.status_code == 200
    assert (await intake.get("/v1/reports", headers=_auth(unit["api_key"]))).status_code == 401
    assert (await intake.get("/v1/reports", headers=_auth(issued.json()["api_key"]))).status_code == 200


@pytest.mark.asyncio(loop_scope="session")
async def test_only_the_admin_manages_keys_of_existing_units(intake: httpx.AsyncClient, new_unit: NewUnit) -> None:
    unit, other = await new_unit(), await new_unit()
    for method in ("POST", "DELETE"):
        response = await intake.request(method, f"/v1/units/{unit['unit_id']}/key", headers=_auth(other["api_key"]))
        assert response.status_code == 403, (method, response.text)
        missing = await intake.request(method, "/v1/units/00000000-0000-0000-0000-000000000000/key", headers=ADMIN)
        assert missing.status_code == 404, (method, missing.text)
        assert (await intake.request(method, f"/v1/units/{unit['unit_id']}/key")).status_code == 401
    # Neither attempt changed the unit's key.
    assert (await intake.get("/v1/reports", headers=_auth(unit["api_key"]))).status_code == 200


@pytest.mark.asyncio(loop_scope="session")
async def test_nul_characters_are_422_not_500(intake: httpx.AsyncClient, new_unit: NewUnit) -> None:
    named = await intake.post("/v1/units", json={"name": "街道\u0000工会", "region_code": "320106"}, headers=ADMIN)
    assert named.status_code == 422, named.text
    assert [(d["field"], d["type"]) for d in named.json()["error"]["details"]] == [("name", "string_nul")]

    unit = await new_unit()
    report = make_report_body(summary="工资\u0000拖欠", enterprise={"name": "南京\u0000公司"})
    answered = await intake.post("/v1/reports", json=report, headers=_auth(unit["api_key"]))
    assert answered.status_code == 422, answered.text
    assert {d["field"] for d in answered.json()["error"]["details"]} == {"summary", "enterprise.name"}

    for query in ({"kind": "arrears\u0000"}, {"cursor": "abc\u0000"}, {"region_code": "32\u0000"}):
        listed = await intake.get("/v1/reports", params=query, headers=ADMIN)
        assert listed.status_code == 422, (query, listed.text)
    assert (await intake.get("/v1/reports/a%00b", headers=ADMIN)).status_code == 422


@pytest.mark.asyncio(loop_scope="session")
@pytest.mark.parametrize("length", [201, 5000, 60_000])
async def test_a_very_long_cursor_is_422(intake: httpx.AsyncClient, length: int) -> None:
    response = await intake.get("/v1/reports", params={"cursor": "A" * length}, headers=ADMIN)
    assert response.status_code == 422, response.text[:300]
    assert [d["field"] for d in response.json()["error"]["details"]] == ["cursor"]


@pytest.mark.asyncio(loop_scope="session")
async def test_failed_authentication_is_rate_limited_per_address(service_env: dict[str, str],
                                                                 new_unit: NewUnit) -> None:
    """A separate intake (its own limiter, 3 failures a minute) so that the blocked address blocks no other test."""
    unit = await new_unit()
    app = create_app(intake_settings(service_env, auth_failure_limit=3))
    async with app.router.lifespan_context(app):
        guessing = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("198.51.100.23", 5000)),
                                     base_url="http://intake")
        elsewhere = httpx.AsyncClient(transport=httpx.ASGITransport(app=app, client=("203.0.113.80", 5000)),
                                      base_url="http://intake")
        async with guessing, elsewhere:
            for n in range(3):
                assert (await guessing.get("/v1/reports", headers=_auth(f"unit_guess{n}"))).status_code == 401
            blocked = await guessing.post("/v1/reports", json=make_report_body(), headers=_auth("unit_guess3"))
            assert blocked.status_code == 429
            assert blocked.json()["error"]["code"] == "rate_limited"
            assert 1 <= int(blocked.headers["Retry-After"]) <= 60
            # The right key from the blocked address is refused too (a guess cannot be confirmed), the admin's
            # as well; another address is served.
            assert (await guessing.get("/v1/reports", headers=_auth(unit["api_key"]))).status_code == 429
            assert (await guessing.get("/v1/reports", headers=_auth(ADMIN_TOKEN))).status_code == 429
            assert (await elsewhere.get("/v1/reports", headers=_auth(unit["api_key"]))).status_code == 200


@pytest.mark.asyncio(loop_scope="session")
async def test_reports_of_one_enterprise_are_accepted_one_at_a_time(intake_db: AsyncEngine) -> None:
    """While one transaction accepts a report of an enterprise, another cannot take that enterprise's lock (it
    waits), while another enterprise's is free: ids, and so the order on Kafka, follow the commit order."""
    sessions = session_factory(intake_db)
    code, other = credit_code(7_100_001), credit_code(7_100_002)
    async with sessions() as first, first.begin():
        await repository.lock_enterprise(first, code)
        async with intake_db.connect() as probe:
            taken = await probe.scalar(select(func.pg_try_advisory_xact_lock(enterprise_lock_key(code))))
            free = await probe.scalar(select(func.pg_try_advisory_xact_lock(enterprise_lock_key(other))))
            await probe.rollback()
        assert taken is False
        assert free is True
    async with intake_db.connect() as probe:
        assert await probe.scalar(select(func.pg_try_advisory_xact_lock(enterprise_lock_key(code)))) is True
        await probe.rollback()
