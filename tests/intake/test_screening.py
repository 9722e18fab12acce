"""Screening rounds (常态化排查、零报告) on real Kafka and PostgreSQL: who is expected, who may answer what and when,
what each side sees, and the `screening.v1` events (the due notice exactly once).

Every test works in region codes of its own (the session database is shared by the intake tests), so that the
units of one test are never expected in another test's round.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker, create_async_engine

from services.intake.screening import service as screening_service
from shared.db import transaction
from shared.events import (
    ScreeningEvent,
    ScreeningReturnSubmitted,
    ScreeningRoundDue,
    ScreeningRoundOpened,
    ScreeningStatus,
    Topic,
    parse_event,
)
from tests.conftest import KafkaReader
from tests.factories import make_report_body
from tests.intake.conftest import ADMIN, NewUnit, intake_settings, running_intake

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

WAIT_SECONDS = 45.0


def _now() -> datetime:
    return datetime.now(UTC)


async def _create_round(
    intake: httpx.AsyncClient, region_code: str, *, opens_at: datetime | None = None,
    due_at: datetime | None = None, name: str = "2026年第四季度职工队伍稳定风险排查",
) -> str:
    body = {
        "name": name, "region_code": region_code,
        "opens_at": (opens_at or _now() - timedelta(minutes=5)).isoformat(),
        "due_at": (due_at or _now() + timedelta(days=7)).isoformat(),
    }
    response = await intake.post("/v1/screening-rounds", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    round_id: str = response.json()["round_id"]
    return round_id


async def _answer(
    intake: httpx.AsyncClient, round_id: str, unit: dict[str, str], status: str = "no_risk",
    report_ids: list[str] | None = None, **extra: Any,
) -> httpx.Response:
    body = {"status": status, "report_ids": report_ids or [], **extra}
    return await intake.post(f"/v1/screening-rounds/{round_id}/returns", json=body,
                             headers={"Authorization": unit["auth"]})


async def _report_of(intake: httpx.AsyncClient, unit: dict[str, str]) -> str:
    response = await intake.post("/v1/reports", json=make_report_body(region_code=unit["region_code"]),
                                 headers={"Authorization": unit["auth"]})
    assert response.status_code == 202, response.text
    report_id: str = response.json()["report_id"]
    return report_id


async def _admin_view(intake: httpx.AsyncClient, round_id: str) -> dict[str, Any]:
    response = await intake.get(f"/v1/screening-rounds/{round_id}", headers=ADMIN)
    assert response.status_code == 200, response.text
    view: dict[str, Any] = response.json()
    return view


async def _eventually(probe: Callable[[], Awaitable[Any]], done: Callable[[Any], bool], what: str) -> Any:
    """Call `probe` until `done(result)`; fails after WAIT_SECONDS (a bound on waiting, not a speed assertion)."""
    deadline = asyncio.get_running_loop().time() + WAIT_SECONDS
    while True:
        result = await probe()
        if done(result):
            return result
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out waiting for {what}; last: {result!r}"[:3000])
        await asyncio.sleep(0.3)


async def _screening_messages(reader: KafkaReader, round_id: str) -> list[tuple[bytes, ScreeningEvent, bytes]]:
    """(key, event, raw value) of the round's messages on screening.v1."""
    found = []
    for record in await reader.read_all(Topic.screening.value, idle_ms=700):
        event = parse_event(record.value)  # type: ignore[attr-defined]
        if getattr(event, "round_id", None) == round_id:
            assert isinstance(event, ScreeningRoundOpened | ScreeningReturnSubmitted | ScreeningRoundDue)
            found.append((record.key, event, record.value))  # type: ignore[attr-defined]
    return found


async def _deactivate(engine: AsyncEngine, unit_id: str) -> None:
    async with engine.begin() as connection:
        await connection.execute(text("UPDATE intake.units SET active = false WHERE id = :id"), {"id": unit_id})


def _units(view: dict[str, Any]) -> set[str]:
    return {unit["unit_id"] for unit in view["missing"]}


# --- creation: who is expected --------------------------------------------------------------------------------

async def test_a_round_expects_the_active_units_of_its_region_as_they_were_at_creation(
    intake: httpx.AsyncClient, new_unit: NewUnit, intake_db: AsyncEngine
) -> None:
    # Province 64 belongs to this test alone.
    a = await new_unit("银川兴庆区甲工会", "640104")
    b = await new_unit("银川西夏区乙工会", "640105")
    c = await new_unit("石嘴山大武口区丙工会", "640202")
    gone = await new_unit("已撤销的工会", "640104")
    await _deactivate(intake_db, gone["unit_id"])
    await new_unit("邻省的工会", "650102")

    province = await _create_round(intake, "640000")
    city = await _create_round(intake, "640100")
    county = await _create_round(intake, "640104")

    # Later changes do not rewrite history: a new unit is not expected, a deactivated one still is.
    late = await new_unit("后来登记的工会", "640104")
    await _deactivate(intake_db, a["unit_id"])

    province_view = await _admin_view(intake, province)
    assert province_view["region_level"] == "province"
    assert province_view["expected"] == 3
    assert province_view["answered"] == 0
    assert _units(province_view) == {a["unit_id"], b["unit_id"], c["unit_id"]}
    assert province_view["missing"][0] == {"unit_id": a["unit_id"], "name": "银川兴庆区甲工会",
                                           "region_code": "640104"}
    assert [(r["region_code"], r["expected"]) for r in province_view["by_region"]] == [
        ("640104", 1), ("640105", 1), ("640202", 1)]
    city_view = await _admin_view(intake, city)
    assert (city_view["region_level"], city_view["expected"]) == ("city", 2)
    assert _units(city_view) == {a["unit_id"], b["unit_id"]}
    county_view = await _admin_view(intake, county)
    assert (county_view["region_level"], county_view["expected"]) == ("county", 1)
    assert _units(county_view) == {a["unit_id"]}

    not_expected = await intake.get(f"/v1/screening-rounds/{province}", headers={"Authorization": late["auth"]})
    assert not_expected.status_code == 404
    refused = await _answer(intake, province, late)
    assert refused.status_code == 404


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"region_code": "32010"}, "region_code"),
        ({"region_code": "320001"}, "region_code"),  # neither a province, a city nor a county
        ({"region_code": "990000"}, "region_code"),  # no such province
        ({"region_code": "540000"}, "region_code"),  # no unit registered there
        ({"name": ""}, "name"),
        ({"due_at": "OPENS_AT"}, "due_at"),  # not after opens_at
        ({"opens_at": "PAST", "due_at": "PAST_LATER"}, "due_at"),  # already due
        ({"due_at": "2026-12-01T00:00:00"}, "due_at"),  # no UTC offset
    ],
)
async def test_round_creation_names_the_bad_field(
    intake: httpx.AsyncClient, override: dict[str, str], field: str
) -> None:
    opens_at = _now() - timedelta(hours=1)
    values = {"OPENS_AT": opens_at.isoformat(), "PAST": (_now() - timedelta(days=2)).isoformat(),
              "PAST_LATER": (_now() - timedelta(days=1)).isoformat()}
    body = {"name": "排查", "region_code": "320000", "opens_at": opens_at.isoformat(),
            "due_at": (_now() + timedelta(days=1)).isoformat()}
    body.update({key: values.get(value, value) for key, value in override.items()})

    response = await intake.post("/v1/screening-rounds", json=body, headers=ADMIN)

    assert response.status_code == 422, response.text
    details = response.json()["error"]["details"]
    assert [detail["field"] for detail in details] == [field]
    assert re.search(r"[\u4e00-\u9fff].* / [A-Za-z]", details[0]["reason"]), details[0]["reason"]


async def test_only_the_administrator_opens_rounds(intake: httpx.AsyncClient, new_unit: NewUnit) -> None:
    unit = await new_unit("某工会", "630121")
    body = {"name": "排查", "region_code": "630121", "opens_at": _now().isoformat(),
            "due_at": (_now() + timedelta(days=1)).isoformat()}

    assert (await intake.post("/v1/screening-rounds", json=body)).status_code == 401
    response = await intake.post("/v1/screening-rounds", json=body, headers={"Authorization": unit["auth"]})
    assert response.status_code == 403


# --- answers --------------------------------------------------------------------------------------------------

async def test_a_unit_answers_no_risk_and_sees_only_its_own_answer(
    intake: httpx.AsyncClient, new_unit: NewUnit
) -> None:
    first = await new_unit("西宁城东区甲工会", "630102")
    second = await new_unit("西宁城东区乙工会", "630102")
    round_id = await _create_round(intake, "630102")

    response = await _answer(intake, round_id, first, "no_risk", note="本期已逐一走访,未发现风险隐患")

    assert response.status_code == 201, response.text
    stored = response.json()
    assert (stored["round_id"], stored["unit_id"], stored["status"]) == (round_id, first["unit_id"], "no_risk")
    assert (stored["report_ids"], stored["revision"]) == ([], 1)
    assert stored["note"] == "本期已逐一走访,未发现风险隐患"

    own = (await intake.get(f"/v1/screening-rounds/{round_id}", headers={"Authorization": first["auth"]})).json()
    assert own["my_return"]["status"] == "no_risk"
    assert own["state"] == "open"
    assert not {"missing", "by_region", "expected", "answered"} & set(own)
    other = (await intake.get(f"/v1/screening-rounds/{round_id}", headers={"Authorization": second["auth"]})).json()
    assert other["my_return"] is None
    assert first["unit_id"] not in json.dumps(other)

    view = await _admin_view(intake, round_id)
    assert (view["expected"], view["answered"], view["no_risk"], view["risks_reported"]) == (2, 1, 1, 0)
    assert view["missing"] == [{"unit_id": second["unit_id"], "name": "西宁城东区乙工会", "region_code": "630102"}]
    assert view["by_region"] == [{"region_code": "630102", "expected": 2, "answered": 1, "no_risk": 1,
                                  "risks_reported": 0}]


async def test_a_second_answer_replaces_the_first_before_due(intake: httpx.AsyncClient, new_unit: NewUnit) -> None:
    unit = await new_unit("西宁城中区工会", "630103")
    round_id = await _create_round(intake, "630103")
    report_id = await _report_of(intake, unit)
    first = (await _answer(intake, round_id, unit, "no_risk")).json()

    response = await _answer(intake, round_id, unit, "risks_reported", [report_id, report_id])

    assert response.status_code == 200, response.text
    replaced = response.json()
    assert (replaced["status"], replaced["report_ids"], replaced["revision"]) == ("risks_reported", [report_id], 2)
    assert replaced["first_submitted_at"] == first["first_submitted_at"]
    assert replaced["submitted_at"] > first["submitted_at"]
    view = await _admin_view(intake, round_id)
    assert (view["answered"], view["no_risk"], view["risks_reported"], view["missing"]) == (1, 0, 1, [])


@pytest.mark.parametrize(
    ("status", "with_report", "error_type"),
    [("risks_reported", False, "screening_reports_required"), ("no_risk", True, "screening_reports_forbidden")],
)
async def test_risks_reported_needs_reports_and_no_risk_takes_none(
    intake: httpx.AsyncClient, new_unit: NewUnit, status: str, with_report: bool, error_type: str
) -> None:
    unit = await new_unit("西宁城西区工会", "630104")
    round_id = await _create_round(intake, "630104")
    report_ids = [await _report_of(intake, unit)] if with_report else []

    response = await _answer(intake, round_id, unit, status, report_ids)

    assert response.status_code == 422, response.text
    [detail] = response.json()["error"]["details"]
    assert (detail["field"], detail["type"]) == ("report_ids", error_type)
    assert " / " in detail["reason"]
    own = (await intake.get(f"/v1/screening-rounds/{round_id}", headers={"Authorization": unit["auth"]})).json()
    assert own["my_return"] is None


async def test_a_unit_links_only_its_own_reports_and_learns_nothing_of_others(
    intake: httpx.AsyncClient, new_unit: NewUnit
) -> None:
    mine = await new_unit("西宁城北区甲工会", "630105")
    theirs = await new_unit("西宁城北区乙工会", "630105")
    round_id = await _create_round(intake, "630105")
    their_report = await _report_of(intake, theirs)
    my_report = await _report_of(intake, mine)

    others = await _answer(intake, round_id, mine, "risks_reported", [my_report, their_report])
    nobody = "7d0c7f4e-4a51-4f7e-9d35-0f1f4b7c2a11"
    unknown = await _answer(intake, round_id, mine, "risks_reported", [my_report, nobody])
    not_an_id = await _answer(intake, round_id, mine, "risks_reported", ["not-a-report-id"])

    assert others.status_code == unknown.status_code == not_an_id.status_code == 422
    assert others.json() == unknown.json()  # the other unit's report is indistinguishable from a missing one
    assert their_report not in others.text
    assert not_an_id.json()["error"]["details"][0]["field"] == "report_ids.0"
    view = await _admin_view(intake, round_id)
    assert view["answered"] == 0
    assert (await _answer(intake, round_id, mine, "risks_reported", [my_report])).status_code == 201


async def test_only_expected_units_answer(intake: httpx.AsyncClient, new_unit: NewUnit) -> None:
    inside = await new_unit("格尔木工会", "632801")
    outside = await new_unit("德令哈工会", "632802")
    round_id = await _create_round(intake, "632801")

    assert (await _answer(intake, round_id, outside)).status_code == 404
    unknown = await _answer(intake, "00000000-0000-4000-8000-000000000000", inside)
    assert unknown.status_code == 404
    admin = await intake.post(f"/v1/screening-rounds/{round_id}/returns", json={"status": "no_risk"}, headers=ADMIN)
    assert admin.status_code == 403
    assert (await _answer(intake, round_id, inside)).status_code == 201


async def test_answers_before_opening_are_refused(intake: httpx.AsyncClient, new_unit: NewUnit) -> None:
    unit = await new_unit("海东工会", "630202")
    round_id = await _create_round(intake, "630202", opens_at=_now() + timedelta(hours=1),
                                   due_at=_now() + timedelta(days=1))

    response = await _answer(intake, round_id, unit)

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "round_not_open"
    own = (await intake.get(f"/v1/screening-rounds/{round_id}", headers={"Authorization": unit["auth"]})).json()
    assert (own["state"], own["my_return"]) == ("upcoming", None)


async def test_lists_put_open_rounds_first_and_a_unit_sees_only_its_rounds(
    intake: httpx.AsyncClient, new_unit: NewUnit
) -> None:
    unit = await new_unit("玉树工会", "632701")
    await new_unit("果洛工会", "632621")
    upcoming = await _create_round(intake, "632701", opens_at=_now() + timedelta(days=1),
                                   due_at=_now() + timedelta(days=2))
    later = await _create_round(intake, "632701", due_at=_now() + timedelta(days=9))
    sooner = await _create_round(intake, "632701", due_at=_now() + timedelta(days=3))
    elsewhere = await _create_round(intake, "632621")
    await _answer(intake, later, unit, "no_risk")

    response = await intake.get("/v1/screening-rounds", headers={"Authorization": unit["auth"]})

    assert response.status_code == 200
    items = response.json()["items"]
    assert [item["round_id"] for item in items] == [sooner, later, upcoming]
    assert [item["state"] for item in items] == ["open", "open", "upcoming"]
    assert [item["my_status"] for item in items] == [None, "no_risk", None]
    everything = (await intake.get("/v1/screening-rounds", params={"limit": 200}, headers=ADMIN)).json()["items"]
    assert {sooner, later, upcoming, elsewhere} <= {item["round_id"] for item in everything}
    ranks = [{"open": 0, "upcoming": 1, "closed": 2}[item["state"]] for item in everything]
    assert ranks == sorted(ranks)
    mine = next(item for item in everything if item["round_id"] == later)
    assert (mine["expected"], mine["answered"]) == (1, 1)


# --- due: the notice, exactly once, and the events -----------------------------------------------------------

async def test_the_due_notice_lists_the_units_that_did_not_answer_and_answers_close(
    intake: httpx.AsyncClient, new_unit: NewUnit, kafka_reader: KafkaReader, intake_db: AsyncEngine
) -> None:
    # City 5201 (Guiyang) belongs to this test: two counties, three units.
    quick = await new_unit("贵阳南明区甲工会", "520102")
    silent = await new_unit("贵阳南明区乙工会", "520102")
    risky = await new_unit("贵阳云岩区工会", "520103")
    report_id = await _report_of(intake, risky)
    due_at = _now() + timedelta(seconds=4)
    round_id = await _create_round(intake, "520100", due_at=due_at)
    assert (await _answer(intake, round_id, quick, "no_risk", note="联系人王小明 13912345678")).status_code == 201
    assert (await _answer(intake, round_id, risky, "risks_reported", [report_id])).status_code == 201

    messages = await _eventually(
        lambda: _screening_messages(kafka_reader, round_id),
        lambda found: sum(isinstance(event, ScreeningRoundDue) for _, event, _ in found) >= 2,
        "the due notices on screening.v1",
    )

    # After due_at: no answer, no change.
    late = await _answer(intake, round_id, silent, "no_risk")
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "round_closed"
    assert (await _answer(intake, round_id, quick, "no_risk")).status_code == 409
    view = await _admin_view(intake, round_id)
    assert view["state"] == "closed"
    assert view["due_notified_at"] is not None
    assert _units(view) == {silent["unit_id"]}

    opened = [event for _, event, _ in messages if isinstance(event, ScreeningRoundOpened)]
    returns = [event for _, event, _ in messages if isinstance(event, ScreeningReturnSubmitted)]
    due = [event for _, event, _ in messages if isinstance(event, ScreeningRoundDue)]
    assert sorted((event.county, event.expected, event.round_expected, event.county_count) for event in opened) == [
        ("520102", 2, 3, 2), ("520103", 1, 3, 2)]
    assert {(u.unit_id, u.name) for u in opened[0].units} | {(u.unit_id, u.name) for u in opened[1].units} == {
        (quick["unit_id"], "贵阳南明区甲工会"), (silent["unit_id"], "贵阳南明区乙工会"),
        (risky["unit_id"], "贵阳云岩区工会")}
    assert sorted((e.county, e.unit_id, e.status, e.report_count, e.report_ids, e.revision) for e in returns) == [
        ("520102", quick["unit_id"], ScreeningStatus.no_risk, 0, [], 1),
        ("520103", risky["unit_id"], ScreeningStatus.risks_reported, 1, [report_id], 1)]
    by_county = {event.county: event for event in due}
    assert len(due) == 2
    nanming, yunyan = by_county["520102"], by_county["520103"]
    assert (nanming.expected, nanming.answered, nanming.no_risk, nanming.risks_reported) == (2, 1, 1, 0)
    assert [(u.unit_id, u.name) for u in nanming.missing] == [(silent["unit_id"], "贵阳南明区乙工会")]
    assert (yunyan.expected, yunyan.answered, yunyan.risks_reported, yunyan.missing) == (1, 1, 1, [])
    for key, event, raw in messages:
        assert key == event.county.encode()
        assert (event.trace_id, event.round_region_code, event.due_at) == (round_id, "520100", due_at)
        for private in ("王小明", "13912345678", "note"):
            assert private not in raw.decode()
    # Exactly once: another pass of the timer (as by a second replica) writes nothing more for this round.
    async with transaction(async_sessionmaker(intake_db, expire_on_commit=False)) as session:
        await screening_service.write_due_notices(session, now=_now(), limit=1000)
    async with intake_db.connect() as connection:
        written = (await connection.execute(text(
            "SELECT count(*) FROM intake.outbox WHERE payload::jsonb->>'round_id' = :id "
            "AND payload::jsonb->>'event_type' = 'screening.round_due'"), {"id": round_id})).scalar_one()
    assert written == 2


async def test_the_events_carry_cloudevents_headers(intake: httpx.AsyncClient, new_unit: NewUnit,
                                                    kafka_reader: KafkaReader) -> None:
    await new_unit("遵义红花岗区工会", "520302")
    round_id = await _create_round(intake, "520302")

    await _eventually(lambda: _screening_messages(kafka_reader, round_id), lambda found: len(found) == 1,
                      "the round_opened event")
    records = [r for r in await kafka_reader.read_all(Topic.screening.value, idle_ms=700)
               if round_id.encode() in r.value]  # type: ignore[attr-defined]
    headers = dict(records[0].headers)  # type: ignore[attr-defined]
    assert headers["ce_type"] == b"cn.labour-risk.screening.round_opened"
    assert headers["ce_traceid"] == round_id.encode()
    assert headers["ce_source"] == b"intake"


def _unit_maker(client: httpx.AsyncClient) -> NewUnit:
    async def create(name: str, region_code: str) -> dict[str, str]:
        response = await client.post("/v1/units", json={"name": name, "region_code": region_code}, headers=ADMIN)
        assert response.status_code == 201, response.text
        body: dict[str, str] = response.json()
        return {**body, "auth": f"Bearer {body['api_key']}"}

    return create


async def test_the_due_notice_is_written_exactly_once_by_concurrent_workers(isolated_env: dict[str, str]) -> None:
    settings = intake_settings(isolated_env)
    due_at = _now() + timedelta(seconds=3)
    async with running_intake(settings) as client:
        make_unit = _unit_maker(client)
        answered = await make_unit("南京玄武区甲工会", "320102")
        missing = [await make_unit("南京玄武区乙工会", "320102"), await make_unit("南京秦淮区工会", "320104")]
        round_id = await _create_round(client, "320100", due_at=due_at)
        assert (await _answer(client, round_id, answered)).status_code == 201
    # The service is down at due_at; eight transactions race for the notice, then the service (and its worker)
    # comes back.
    await asyncio.sleep((due_at - _now()).total_seconds() + 0.2)
    engine = create_async_engine(isolated_env["DATABASE_URL"])
    sessions = async_sessionmaker(engine, expire_on_commit=False, autoflush=False)

    async def claim() -> int:
        async with transaction(sessions) as session:
            return (await screening_service.write_due_notices(session, now=_now(), limit=20)).events

    try:
        written = await asyncio.gather(*(claim() for _ in range(8)))
        assert sorted(written) == [0] * 7 + [2]
        reader = KafkaReader(isolated_env["KAFKA_BOOTSTRAP_SERVERS"], isolated_env["KAFKA_TOPIC_PREFIX"])
        async with running_intake(settings) as client:
            found = await _eventually(
                lambda: _screening_messages(reader, round_id),
                lambda found: sum(isinstance(event, ScreeningRoundDue) for _, event, _ in found) >= 2,
                "the due notices",
            )
            view = await _admin_view(client, round_id)
        due = sorted((e.county, [u.unit_id for u in e.missing])
                     for _, e, _ in found if isinstance(e, ScreeningRoundDue))
        assert due == [("320102", [missing[0]["unit_id"]]), ("320104", [missing[1]["unit_id"]])]
        assert view["due_notified_at"] is not None
        async with engine.connect() as connection:
            rows = (await connection.execute(text(
                "SELECT count(*) FROM intake.outbox WHERE payload::jsonb->>'event_type' = 'screening.round_due'"
            ))).scalar_one()
        assert rows == 2
    finally:
        await engine.dispose()


# --- metrics --------------------------------------------------------------------------------------------------

def _metric(text_: str, name: str, labels: str) -> float | None:
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text_, re.MULTILINE)
    return float(match.group(1)) if match else None


async def test_coverage_per_city_and_returns_by_status_are_metrics(
    intake: httpx.AsyncClient, new_unit: NewUnit
) -> None:
    # City 6201 (Lanzhou) belongs to this test.
    counties = ["620102", "620102", "620103", "620104"]
    units = [await new_unit(f"兰州工会{i}", county) for i, county in enumerate(counties)]
    round_id = await _create_round(intake, "620100")
    before = (await intake.get("/metrics")).text
    no_risk_before = _metric(before, "intake_screening_returns_total", 'status="no_risk"') or 0.0

    for unit in units[:2]:
        assert (await _answer(intake, round_id, unit, "no_risk")).status_code == 201
    assert (await _answer(intake, round_id, units[0], "no_risk")).status_code == 200

    after = await _eventually(
        lambda: intake.get("/metrics"),
        lambda response: _metric(response.text, "intake_screening_coverage_ratio", 'city="620100"') == 0.5,
        "the coverage gauge of city 620100",
    )
    assert _metric(after.text, "intake_screening_expected_units", 'city="620100"') == 4
    assert _metric(after.text, "intake_screening_answered_units", 'city="620100"') == 2
    assert _metric(after.text, "intake_screening_returns_total", 'status="no_risk"') == no_risk_before + 3
    assert _metric(after.text, "intake_screening_returns_total", 'status="risks_reported"') is not None
