"""Screening rounds as the alerts service hears them on `screening.v1` (real Kafka and PostgreSQL): coverage per
round and county (redelivered events and later revisions included), who may see it, and the one due notice sent
to the county federation (or, without one, the city federation) with the units that did not answer.

Each test uses counties of its own, so that the bodies of one do not cover the counties of another.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts import messages, service
from shared.events import (
    EventBase,
    ScreeningReturnSubmitted,
    ScreeningRoundDue,
    ScreeningRoundOpened,
    ScreeningStatus,
    ScreeningUnit,
    Topic,
)
from tests.alerts.conftest import ADMIN, AlertsWorld
from tests.support.receivers import signature_is_valid, webhook_receiver

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

SECRET = "webhook-secret-0123456789"


class Round:
    """One screening round over some counties, and the events intake would publish for it."""

    def __init__(self, units: dict[str, list[str]], *, region_code: str, opens_at: datetime | None = None,
                 due_at: datetime | None = None) -> None:
        self.round_id = str(uuid.uuid4())
        self.region_code = region_code
        self.opens_at = opens_at or datetime.now(UTC) - timedelta(hours=1)
        self.due_at = due_at or datetime.now(UTC) + timedelta(days=7)
        self.units = {county: [ScreeningUnit(unit_id=f"{county}-{name}", name=f"{name}有限公司") for name in names]
                      for county, names in units.items()}
        self.revisions: dict[str, int] = {}
        total = sum(len(units) for units in self.units.values())
        self.opened = [
            ScreeningRoundOpened(**self._fields(county), round_expected=total, county_count=len(self.units),
                                 expected=len(units), units=units)
            for county, units in self.units.items()
        ]

    def _fields(self, county: str) -> dict[str, Any]:
        return {"trace_id": self.round_id, "round_id": self.round_id, "round_name": "2026年第四季度排查",
                "round_region_code": self.region_code, "county": county, "opens_at": self.opens_at,
                "due_at": self.due_at}

    def answer(self, county: str, index: int, status: ScreeningStatus) -> ScreeningReturnSubmitted:
        unit = self.units[county][index]
        self.revisions[unit.unit_id] = self.revisions.get(unit.unit_id, 0) + 1
        reports = ["r-1"] if status == ScreeningStatus.risks_reported else []
        return ScreeningReturnSubmitted(
            **self._fields(county), unit_id=unit.unit_id, unit_name=unit.name, status=status, report_ids=reports,
            report_count=len(reports), revision=self.revisions[unit.unit_id], submitted_at=datetime.now(UTC))

    def due(self, county: str, answered: dict[int, ScreeningStatus]) -> ScreeningRoundDue:
        units = self.units[county]
        return ScreeningRoundDue(
            **self._fields(county), expected=len(units), answered=len(answered),
            no_risk=sum(1 for s in answered.values() if s == ScreeningStatus.no_risk),
            risks_reported=sum(1 for s in answered.values() if s == ScreeningStatus.risks_reported),
            missing=[unit for index, unit in enumerate(units) if index not in answered])


async def publish(world: AlertsWorld, *events: EventBase) -> None:
    await world.producer.send_events([(Topic.screening.value, event) for event in events])


async def processed(world: AlertsWorld, *events: EventBase) -> None:
    ids = [str(event.event_id) for event in events]
    await world.wait_for(
        lambda: _equals(world.scalar("SELECT count(*) FROM alerts.processed_events WHERE event_id = ANY(:ids)",
                                     ids=ids), len(set(ids))),
        what="screening events processed")


async def _equals(awaitable: Any, expected: object) -> bool:
    return bool(await awaitable == expected)


async def coverage(world: AlertsWorld, headers: dict[str, str], **params: str) -> Any:
    answer = await world.client.get("/v1/screening/coverage", params=params, headers=headers)
    assert answer.status_code == 200, answer.text
    return answer.json()


def auth(body: dict[str, str]) -> dict[str, str]:
    return {"Authorization": body["auth"]}


def county_of(page: dict[str, Any], round_id: str, county: str) -> dict[str, Any]:
    (found,) = [c for r in page["rounds"] if r["round_id"] == round_id for c in r["counties"] if c["county"] == county]
    return found


async def test_coverage_follows_the_answers_in_force_whatever_the_redeliveries(alerts: AlertsWorld) -> None:
    county_union = await alerts.body(region_code="320102")
    round_ = Round({"320102": ["甲", "乙", "丙", "丁"], "320104": ["戊"]}, region_code="320100")
    first = round_.answer("320102", 0, ScreeningStatus.no_risk)
    risks = round_.answer("320102", 1, ScreeningStatus.risks_reported)
    replaced = round_.answer("320102", 1, ScreeningStatus.no_risk)  # revision 2 replaces revision 1
    third = round_.answer("320102", 2, ScreeningStatus.risks_reported)

    await publish(alerts, *round_.opened, first, first, risks, replaced, third)
    await processed(alerts, *round_.opened, first, risks, replaced, third)
    late = risks.model_copy(update={"event_id": uuid.uuid4()})  # revision 1 again, under another id, late
    await publish(alerts, late)
    await processed(alerts, late)
    page = await coverage(alerts, auth(county_union))

    (seen,) = page["rounds"]
    assert (seen["round_id"], seen["state"], seen["region_code"]) == (round_.round_id, "open", "320100")
    assert [c["county"] for c in seen["counties"]] == ["320102"]  # a county federation sees its county only
    county = seen["counties"][0]
    assert (county["expected"], county["answered"], county["no_risk"], county["risks_reported"]) == (4, 3, 2, 1)
    assert [unit["unit_id"] for unit in county["missing"]] == ["320102-丁"]
    assert (county["closed"], county["notice"]) == (False, None)
    assert county["county_name"] == "玄武区 / Xuanwu District"
    assert await alerts.scalar("SELECT revision FROM alerts.screening_answers WHERE unit_id = '320102-乙'") == 2


async def test_who_sees_which_counties(alerts: AlertsWorld) -> None:
    county_union = await alerts.body(region_code="320205")
    city_union = await alerts.body(level="city", region_code="320200")
    other_city = await alerts.body(level="city", region_code="320300")
    mediation = await alerts.body(kind="mediation_centre", region_code="320205")
    round_ = Round({"320205": ["甲", "乙"], "320206": ["丙"]}, region_code="320200")
    await publish(alerts, *round_.opened, round_.answer("320206", 0, ScreeningStatus.no_risk))
    await processed(alerts, *round_.opened)

    def counties(page: dict[str, Any]) -> list[str]:
        return [c["county"] for r in page["rounds"] if r["round_id"] == round_.round_id for c in r["counties"]]

    as_city = await alerts.wait_for(
        lambda: _answered(coverage(alerts, auth(city_union)), round_.round_id), what="the answer counted")
    assert counties(as_city) == ["320205", "320206"]
    (totals,) = as_city["rounds"]
    assert (totals["expected"], totals["answered"], totals["no_risk"]) == (3, 1, 1)
    assert counties(await coverage(alerts, auth(county_union))) == ["320205"]
    assert counties(await coverage(alerts, auth(city_union), region_code="320206")) == ["320206"]
    assert counties(await coverage(alerts, auth(county_union), region_code="320200")) == ["320205"]
    assert counties(await coverage(alerts, auth(county_union), region_code="320206")) == []
    assert counties(await coverage(alerts, auth(other_city))) == []
    assert counties(await coverage(alerts, ADMIN, round_id=round_.round_id)) == ["320205", "320206"]
    assert counties(await coverage(alerts, ADMIN, region_code="320000", round_id=round_.round_id)) == [
        "320205", "320206"]
    refused = await alerts.client.get("/v1/screening/coverage", headers=auth(mediation))
    assert refused.status_code == 403
    assert (await alerts.client.get("/v1/screening/coverage")).status_code == 401
    assert (await alerts.client.get("/v1/screening/coverage", params={"region_code": "32"},
                                    headers=ADMIN)).status_code == 422


async def _answered(awaitable: Any, round_id: str) -> Any:
    page = await awaitable
    return page if any(r["round_id"] == round_id and r["answered"] for r in page["rounds"]) else None


async def test_the_county_federation_gets_one_notice_listing_the_units_that_did_not_answer(
    alerts: AlertsWorld,
) -> None:
    with webhook_receiver() as receiver:
        union = await alerts.body(region_code="320311", name="徐州市泉山区总工会",  # two webhooks: both get it
                                  channels=[{"type": "webhook", "url": receiver.url, "secret": SECRET},
                                            {"type": "webhook", "url": f"{receiver.url}/2", "secret": SECRET}])
        city_union = await alerts.body(level="city", region_code="320300")
        round_ = Round({"320311": ["甲", "乙", "丙"]}, region_code="320311")
        answered = round_.answer("320311", 0, ScreeningStatus.no_risk)
        due = round_.due("320311", {0: ScreeningStatus.no_risk})
        again = due.model_copy(update={"event_id": uuid.uuid4()})  # intake re-emitting it under another id

        await publish(alerts, *round_.opened, answered, due, due)
        await processed(alerts, due)
        await publish(alerts, again)
        await processed(alerts, again)
        await alerts.wait_for(lambda: _equals(_len(receiver.accepted), 2), what="the notice delivered")
        await asyncio.sleep(1.0)  # room for a wrong second notice to show up
        page = await coverage(alerts, auth(union))
        as_city = await coverage(alerts, auth(city_union), round_id=round_.round_id)

    assert len(receiver.requests) == 2
    assert sorted(receiver.accepted_paths) == ["/hook", "/hook/2"]
    headers, raw = receiver.accepted[0]
    assert signature_is_valid(headers, raw, SECRET)
    assert "x-alert-id" not in headers
    payload = json.loads(raw)
    assert payload["event"] == "screening.round_due"
    assert payload["notice_id"] == f"{round_.round_id}/320311"
    assert payload["round"]["round_id"] == round_.round_id
    assert payload["county"] == {"code": "320311", "name_zh": "泉山区", "name_en": "Quanshan District"}
    assert (payload["expected"], payload["answered"], payload["no_risk"], payload["risks_reported"]) == (3, 1, 1, 0)
    assert [unit["unit_id"] for unit in payload["missing"]] == ["320311-乙", "320311-丙"]
    deliveries = await alerts.rows(
        "SELECT body_id, kind, alert_id, event_type, state, channel_index, channel FROM alerts.deliveries "
        "WHERE subject = :s ORDER BY channel_index", s=f"{round_.round_id}/320311")
    assert [tuple(row)[:6] for row in deliveries] == [
        (union["body_id"], "screening_notice", None, "screening.round_due", "delivered", index) for index in (0, 1)]
    assert all(set(row.channel) == {"type", "url"} for row in deliveries)  # no secret kept with a delivery
    county = county_of(page, round_.round_id, "320311")
    assert county["closed"] is True
    assert (county["expected"], county["answered"], county["no_risk"]) == (3, 1, 1)
    assert [unit["name"] for unit in county["missing"]] == ["乙有限公司", "丙有限公司"]
    assert county["notice"]["body_id"] == union["body_id"]
    assert county["notice"]["body_name"] == "徐州市泉山区总工会"
    assert as_city["rounds"][0]["state"] == "closed"
    assert payload["inbox_url"].endswith("/inbox#/coverage")  # opens the inbox on its coverage tab
    text = messages.markdown(payload)
    assert f"]({payload['inbox_url']})" in text
    assert f"查看排查覆盖：{payload['inbox_url']}" in messages.email_text(payload)[1]
    assert "乙有限公司" in text
    assert "丙有限公司" in text
    assert "甲有限公司" not in text
    # No escalation, no deadline: the notice is no alert.
    assert await alerts.scalar("SELECT count(*) FROM alerts.alerts WHERE region_code = '320311'") == 0


async def _len(items: list[Any]) -> int:
    return len(items)


async def test_without_a_county_union_the_city_union_gets_the_notice(alerts: AlertsWorld) -> None:
    await alerts.body(kind="mediation_centre", region_code="320412")  # not a federation
    await alerts.body(region_code="320411")  # the union of another county
    city_union = await alerts.body(level="city", region_code="320400", channels=[
        {"type": "email", "address": "jyjyz@example.org"}, {"type": "wecom", "url": "http://127.0.0.1:9/robot"}])
    round_ = Round({"320412": ["甲", "乙"]}, region_code="320412")
    due = round_.due("320412", {})

    await publish(alerts, *round_.opened, due)
    await processed(alerts, due)

    rows = await alerts.rows("SELECT body_id, channel_type FROM alerts.deliveries WHERE subject = :s ORDER BY 2",
                             s=f"{round_.round_id}/320412")
    assert [tuple(row) for row in rows] == [(city_union["body_id"], "email"), (city_union["body_id"], "wecom")]
    page = await coverage(alerts, auth(city_union), round_id=round_.round_id)
    assert county_of(page, round_.round_id, "320412")["notice"]["body_id"] == city_union["body_id"]


async def test_a_county_no_union_covers_gets_no_notice_but_its_figures(alerts: AlertsWorld) -> None:
    round_ = Round({"610102": ["甲"]}, region_code="610102")
    due = round_.due("610102", {})

    await publish(alerts, *round_.opened, due)
    await processed(alerts, due)

    assert await alerts.scalar("SELECT count(*) FROM alerts.deliveries WHERE subject = :s",
                               s=f"{round_.round_id}/610102") == 0
    county = county_of(await coverage(alerts, ADMIN, round_id=round_.round_id), round_.round_id, "610102")
    assert county["closed"] is True
    assert county["notice"]["body_id"] is None
    assert [unit["unit_id"] for unit in county["missing"]] == ["610102-甲"]


async def test_the_coverage_gauge_counts_open_rounds_per_city(alerts: AlertsWorld) -> None:
    now = datetime.now(UTC)
    open_round = Round({"320502": ["甲", "乙", "丙", "丁"], "320505": ["戊"]}, region_code="320500")
    upcoming = Round({"320506": ["己"]}, region_code="320506", opens_at=now + timedelta(days=1),
                     due_at=now + timedelta(days=2))
    answers = [open_round.answer("320502", 0, ScreeningStatus.no_risk),
               open_round.answer("320505", 0, ScreeningStatus.risks_reported)]

    await publish(alerts, *open_round.opened, *upcoming.opened, *answers)
    await processed(alerts, *answers, *upcoming.opened)
    async with AsyncSession(alerts.db) as session:
        _, cities = await service.casework_gauges(session, datetime.now(UTC))

    assert cities["320500"] == (5, 2)
