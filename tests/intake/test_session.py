"""The form's sign-in on real PostgreSQL: a unit's key opens a cookie session that authenticates its API calls,
sign-out and deactivation end it, a cross-site style request with only the cookie is refused, and bearer keys work
as before."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from services.intake.signin import service as signin_service
from services.intake.signin.service import SESSION_COOKIE
from shared.auth import hash_token
from shared.db import transaction
from tests.conftest import ADMIN_TOKEN
from tests.factories import make_report_body
from tests.intake.conftest import NewUnit, count_rows, intake_settings, running_intake

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

XHR = {"X-Requested-With": "fetch"}


async def _sign_in(intake: httpx.AsyncClient, api_key: str) -> tuple[httpx.Response, str]:
    """POST /v1/session as the page does; returns the answer and the cookie's value. The client's cookie jar is
    emptied so that every request below sends the cookie only when a test says so."""
    response = await intake.post("/v1/session", json={"api_key": api_key}, headers=XHR)
    value = response.cookies.get(SESSION_COOKIE) or ""
    intake.cookies.clear()
    return response, value


def _cookie(value: str, **headers: str) -> dict[str, str]:
    return {"Cookie": f"{SESSION_COOKIE}={value}", **headers}


def _set_cookie_attributes(response: httpx.Response) -> dict[str, str]:
    header = response.headers["set-cookie"]
    attributes: dict[str, str] = {}
    for part in header.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        attributes[name.lower()] = value
    return attributes


async def test_signing_in_sets_an_httponly_strict_cookie_that_is_not_the_key(
    intake: httpx.AsyncClient, new_unit: NewUnit, intake_db: AsyncEngine
) -> None:
    unit = await new_unit(name="玄武区某街道工会", region_code="320102")

    response, value = await _sign_in(intake, unit["api_key"])

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["unit_id"] == unit["unit_id"]
    assert body["name"] == "玄武区某街道工会"
    assert body["region_code"] == "320102"
    assert body["region_label"] == "南京市 玄武区 / Xuanwu District, Nanjing"
    assert body["city_code"] == "320100"
    assert value
    assert value != unit["api_key"]
    assert unit["api_key"] not in value
    attributes = _set_cookie_attributes(response)
    assert "httponly" in attributes
    assert attributes["samesite"].lower() == "strict"
    assert attributes["path"] == "/"
    assert attributes["max-age"] == str(12 * 3600)
    assert "secure" not in attributes  # plain http here; see the https test below
    # Only the token's hash is stored, with a bounded lifetime.
    async with intake_db.connect() as connection:
        row = (await connection.execute(text(
            "SELECT token_hash, unit_id, expires_at - created_at AS lifetime FROM intake.unit_sessions "
            "WHERE unit_id = :unit"), {"unit": unit["unit_id"]})).one()
    assert row.token_hash == hash_token(value)
    assert row.lifetime == timedelta(hours=12)


async def test_the_cookie_authenticates_the_units_calls(intake: httpx.AsyncClient, new_unit: NewUnit) -> None:
    unit, other = await new_unit(), await new_unit()
    _, value = await _sign_in(intake, unit["api_key"])
    other_report = await intake.post("/v1/reports", json=make_report_body(), headers={"Authorization": other["auth"]})
    assert other_report.status_code == 202

    me = await intake.get("/v1/me", headers=_cookie(value))
    submitted = await intake.post("/v1/reports", json=make_report_body(), headers=_cookie(value, **XHR))
    listed = await intake.get("/v1/reports", headers=_cookie(value))
    rounds = await intake.get("/v1/screening-rounds", headers=_cookie(value))

    assert me.status_code == 200
    assert me.json()["unit_id"] == unit["unit_id"]
    assert submitted.status_code == 202, submitted.text
    assert listed.status_code == 200
    assert [item["report_id"] for item in listed.json()["items"]] == [submitted.json()["report_id"]]
    assert rounds.status_code == 200
    mine = await intake.get(f"/v1/reports/{submitted.json()['report_id']}", headers=_cookie(value))
    theirs = await intake.get(f"/v1/reports/{other_report.json()['report_id']}", headers=_cookie(value))
    assert mine.status_code == 200
    assert theirs.status_code == 404


async def test_a_cookie_only_cross_site_form_post_is_refused(
    intake: httpx.AsyncClient, new_unit: NewUnit, intake_db: AsyncEngine
) -> None:
    unit = await new_unit()
    _, value = await _sign_in(intake, unit["api_key"])
    before = await count_rows(intake_db, "reports")

    # What a hostile page's <form method=post enctype=text/plain> would send: the cookie, no custom header.
    forged = await intake.post(
        "/v1/reports", content=json.dumps(make_report_body()).encode(),
        headers=_cookie(value, **{"Content-Type": "text/plain"}),
    )
    forged_json = await intake.post("/v1/reports", json=make_report_body(), headers=_cookie(value))
    forged_sign_out = await intake.delete("/v1/session", headers=_cookie(value))
    forged_sign_in = await intake.post("/v1/session", json={"api_key": unit["api_key"]})

    for response in (forged, forged_json, forged_sign_out, forged_sign_in):
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "cross_site_refused"
    assert await count_rows(intake_db, "reports") == before
    # The refused sign-out did not end the session; reading needs no header.
    assert (await intake.get("/v1/me", headers=_cookie(value))).status_code == 200


async def test_signing_out_ends_the_session_for_good(intake: httpx.AsyncClient, new_unit: NewUnit) -> None:
    unit = await new_unit()
    _, value = await _sign_in(intake, unit["api_key"])
    assert (await intake.get("/v1/reports", headers=_cookie(value))).status_code == 200

    response = await intake.delete("/v1/session", headers=_cookie(value, **XHR))
    intake.cookies.clear()

    assert response.status_code == 204
    assert _set_cookie_attributes(response)["max-age"] == "0"
    # The old cookie, replayed, no longer works anywhere.
    for call in (intake.get("/v1/reports", headers=_cookie(value)), intake.get("/v1/me", headers=_cookie(value)),
                 intake.post("/v1/reports", json=make_report_body(), headers=_cookie(value, **XHR))):
        replayed = await call
        assert replayed.status_code == 401
        assert replayed.json()["error"]["code"] == "unauthorized"
    # The key itself still works for scripts.
    assert (await intake.get("/v1/reports", headers={"Authorization": unit["auth"]})).status_code == 200


async def test_a_deactivated_units_session_and_key_stop_working(
    intake: httpx.AsyncClient, new_unit: NewUnit, intake_db: AsyncEngine
) -> None:
    unit = await new_unit()
    _, value = await _sign_in(intake, unit["api_key"])
    assert (await intake.get("/v1/me", headers=_cookie(value))).status_code == 200

    async with intake_db.begin() as connection:
        await connection.execute(text("UPDATE intake.units SET active = false WHERE id = :id"),
                                 {"id": unit["unit_id"]})

    assert (await intake.get("/v1/me", headers=_cookie(value))).status_code == 401
    assert (await intake.get("/v1/reports", headers=_cookie(value))).status_code == 401
    again, again_value = await _sign_in(intake, unit["api_key"])
    assert again.status_code == 401
    assert again_value == ""


async def test_an_expired_session_is_refused(
    intake: httpx.AsyncClient, new_unit: NewUnit, intake_db: AsyncEngine
) -> None:
    unit = await new_unit()
    _, value = await _sign_in(intake, unit["api_key"])
    async with intake_db.begin() as connection:
        await connection.execute(text("UPDATE intake.unit_sessions SET expires_at = :past WHERE token_hash = :hash"),
                                 {"past": datetime.now(UTC) - timedelta(seconds=1), "hash": hash_token(value)})

    assert (await intake.get("/v1/me", headers=_cookie(value))).status_code == 401


@pytest.mark.parametrize("key", ["not-a-key", ADMIN_TOKEN], ids=["unknown", "admin-token"])
async def test_only_a_units_key_signs_in(intake: httpx.AsyncClient, key: str) -> None:
    response, value = await _sign_in(intake, key)

    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    assert value == ""


async def test_a_bearer_key_decides_over_a_cookie_and_keeps_working(
    intake: httpx.AsyncClient, new_unit: NewUnit
) -> None:
    unit = await new_unit()
    _, value = await _sign_in(intake, unit["api_key"])

    wrong_bearer = await intake.get("/v1/reports", headers=_cookie(value, Authorization="Bearer not-a-key"))
    bearer_post = await intake.post("/v1/reports", json=make_report_body(), headers={"Authorization": unit["auth"]})
    me = await intake.get("/v1/me", headers={"Authorization": unit["auth"]})
    garbage_cookie = await intake.get("/v1/reports", headers=_cookie("forged-value"))

    assert wrong_bearer.status_code == 401
    assert bearer_post.status_code == 202  # scripts need no X-Requested-With
    assert me.status_code == 200
    assert me.json()["unit_id"] == unit["unit_id"]
    assert garbage_cookie.status_code == 401


async def test_the_cookie_is_secure_over_https_or_when_configured(
    intake: httpx.AsyncClient, new_unit: NewUnit, service_env: dict[str, str]
) -> None:
    unit = await new_unit()
    https = httpx.AsyncClient(transport=intake._transport, base_url="https://intake")
    async with https:
        over_https = await https.post("/v1/session", json={"api_key": unit["api_key"]}, headers=XHR)
    assert over_https.status_code == 200
    assert "secure" in _set_cookie_attributes(over_https)

    async with running_intake(intake_settings(service_env, session_cookie_secure=True, session_hours=2)) as forced:
        behind_proxy = await forced.post("/v1/session", json={"api_key": unit["api_key"]}, headers=XHR)
    assert behind_proxy.status_code == 200
    attributes = _set_cookie_attributes(behind_proxy)
    assert "secure" in attributes
    assert attributes["max-age"] == str(2 * 3600)


async def test_region_lists_are_public(intake: httpx.AsyncClient) -> None:
    response = await intake.get("/v1/regions")

    assert response.status_code == 200
    data = response.json()
    assert len(data["cities"]) == 13
    nanjing = next(city for city in data["cities"] if city["code"] == "320100")
    assert {"code": "320102", "name_zh": "玄武区", "name_en": "Xuanwu District"} in nanjing["counties"]
    assert len(data["provinces"]) == 34


async def test_the_admin_has_no_unit(intake: httpx.AsyncClient) -> None:
    response = await intake.get("/v1/me", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

    assert response.status_code == 403


async def test_ending_a_units_sessions_signs_out_every_browser(
    intake: httpx.AsyncClient, new_unit: NewUnit, service_env: dict[str, str]
) -> None:
    unit = await new_unit()
    _, first = await _sign_in(intake, unit["api_key"])
    _, second = await _sign_in(intake, unit["api_key"])
    other = await new_unit()
    _, others = await _sign_in(intake, other["api_key"])

    engine = create_async_engine(service_env["DATABASE_URL"])
    try:
        async with transaction(async_sessionmaker(engine, expire_on_commit=False)) as session:
            await signin_service.end_sessions_of_unit(session, unit_id=unit["unit_id"])
    finally:
        await engine.dispose()

    assert (await intake.get("/v1/me", headers=_cookie(first))).status_code == 401
    assert (await intake.get("/v1/me", headers=_cookie(second))).status_code == 401
    assert (await intake.get("/v1/me", headers=_cookie(others))).status_code == 200
