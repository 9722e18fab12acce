"""Case ownership (包案) on real Kafka and PostgreSQL: a notified body names the responsible leader (and may replace
them), records visits; both show in the alert's view, its timeline entries and the messages sent after them, in
the `has_owner` filter and the gauge, and go out on alerts.v1.

Each test works in a region of its own so that the bodies of one do not cover the reports of another.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts import messages, service
from services.alerts.models import Alert
from services.alerts.schemas import OwnerNamedEntry, VisitEntry
from shared.events import AlertChanged, Topic, parse_event
from tests.alerts.conftest import ADMIN, AlertsWorld, make_assessed, when
from tests.conftest import KafkaReader
from tests.factories import credit_code

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ORANGE = {"petition": "repeated"}
RED = {"workers_involved": 320, "collective_action": ["road_blocking"]}


async def alert_events(world: AlertsWorld, alert_id: str) -> list[AlertChanged]:
    reader = KafkaReader(world.env["KAFKA_BOOTSTRAP_SERVERS"], world.env["KAFKA_TOPIC_PREFIX"])
    events = [parse_event(r.value) for r in await reader.read_all(Topic.alerts.value)]  # type: ignore[attr-defined]
    return [e for e in events if isinstance(e, AlertChanged) and e.alert_id == alert_id]


async def open_alert(world: AlertsWorld, region_code: str, **report: Any) -> str:
    event = make_assessed(region_code=region_code, **(report or ORANGE))
    await world.publish(event)
    alert_id: str = (await world.alert_for(event.report_id))["alert_id"]
    return alert_id


def auth(body: dict[str, str]) -> dict[str, str]:
    return {"Authorization": body["auth"]}


def iso(moment: datetime) -> str:
    return moment.isoformat()


async def test_only_a_notified_body_names_the_owner_and_a_new_naming_replaces_the_old(alerts: AlertsWorld) -> None:
    union = await alerts.body(region_code="340102", name="合肥市瑶海区总工会")
    stranger = await alerts.body(region_code="340103")
    alert_id = await open_alert(alerts, "340102")
    path = f"/v1/alerts/{alert_id}/owner"
    leader = {"person": "王建国", "title": "副主席"}

    assert (await alerts.client.post(path, json=leader)).status_code == 401
    assert (await alerts.client.post(path, json=leader, headers=auth(stranger))).status_code == 404
    assert (await alerts.client.post(path, json=leader, headers=ADMIN)).status_code == 403
    assert (await alerts.client.post("/v1/alerts/no-such-alert/owner", json=leader,
                                     headers=auth(union))).status_code == 404
    for bad in ({"person": "王建国"}, {"title": "副主席"}, {"person": "  ", "title": "副主席"},
                {"person": "王" * 51, "title": "副主席"}, {"person": "王建国\n李红", "title": "副主席"},
                {**leader, "phone": "13800138000"}):
        refused = await alerts.client.post(path, json=bad, headers=auth(union))
        assert refused.status_code == 422, bad
    untouched = (await alerts.client.get(f"/v1/alerts/{alert_id}", headers=ADMIN)).json()
    assert untouched["owner"] is None

    first = await alerts.client.post(path, json=leader, headers=auth(union))
    second = await alerts.client.post(path, json={"person": " 李红 ", "title": "主席"}, headers=auth(union))

    assert first.status_code == 200
    assert first.json()["owner"] == {**leader, "body_id": union["body_id"], "body_name": "合肥市瑶海区总工会",
                                     "at": first.json()["owner"]["at"]}
    assert second.status_code == 200
    owner = second.json()["owner"]
    assert (owner["person"], owner["title"], owner["body_id"]) == ("李红", "主席", union["body_id"])
    as_stranger = await alerts.client.get(f"/v1/alerts/{alert_id}", headers=auth(stranger))
    assert as_stranger.status_code == 404
    events = await alerts.wait_for(
        lambda: when(alert_events(alerts, alert_id), lambda es: len(es) >= 3), what="owner events")
    assert [e.event_type for e in events] == ["alert.opened", "alert.owner_named", "alert.owner_named"]
    assert events[1].body_ids == [union["body_id"]]
    assert events[1].state.value == "open"
    assert "王建国" not in str([e.model_dump_json() for e in events])  # names stay off Kafka

    async with AsyncSession(alerts.db) as session:
        row = await session.get(Alert, alert_id)
        assert row is not None
        timeline = service.casework_timeline(row)
    assert [type(entry) for entry in timeline] == [OwnerNamedEntry, OwnerNamedEntry]
    assert timeline[0].replaces is None
    assert timeline[1].replaces is not None
    assert timeline[1].replaces.person == "王建国"
    assert timeline[1].person == "李红"
    detail = (await alerts.client.get(f"/v1/alerts/{alert_id}", headers=auth(union))).json()
    named = [entry for entry in detail["timeline"] if entry["type"] == "owner_named"]
    assert [(e["person"], e["title"], e["body_id"], e["body_name"]) for e in named] == [
        ("王建国", "副主席", union["body_id"], "合肥市瑶海区总工会"),
        ("李红", "主席", union["body_id"], "合肥市瑶海区总工会"),
    ]
    assert detail["timeline"][0]["type"] == "opened"


async def test_no_owner_is_named_on_a_resolved_alert(alerts: AlertsWorld) -> None:
    union = await alerts.body(region_code="340104")
    alert_id = await open_alert(alerts, "340104")
    resolved = await alerts.client.post(f"/v1/alerts/{alert_id}/resolve", headers=auth(union),
                                        json={"outcome": "paid", "note": "已清偿"})
    assert resolved.status_code == 200

    refused = await alerts.client.post(f"/v1/alerts/{alert_id}/owner", headers=auth(union),
                                       json={"person": "王建国", "title": "副主席"})

    assert refused.status_code == 409


async def test_visits_are_validated_recorded_by_notified_bodies_and_listed_by_when_they_took_place(
    alerts: AlertsWorld,
) -> None:
    union = await alerts.body(region_code="340111", name="合肥市包河区总工会")
    stranger = await alerts.body(region_code="340121")
    alert_id = await open_alert(alerts, "340111")
    path = f"/v1/alerts/{alert_id}/visits"
    now = datetime.now(UTC)
    earlier, later = now - timedelta(days=2), now - timedelta(hours=3)
    visit = {"at": iso(later), "person": "王建国", "note": "走访企业,约谈负责人,督促制定工资支付计划"}

    assert (await alerts.client.post(path, json=visit)).status_code == 401
    assert (await alerts.client.post(path, json=visit, headers=auth(stranger))).status_code == 404
    assert (await alerts.client.post(path, json=visit, headers=ADMIN)).status_code == 403
    invalid = {
        "future": {**visit, "at": iso(now + timedelta(hours=1))},
        "no offset": {**visit, "at": later.replace(tzinfo=None).isoformat()},
        "no note": {"at": visit["at"], "person": "王建国"},
        "blank note": {**visit, "note": "   "},
        "long note": {**visit, "note": "记" * 2001},
        "no person": {"at": visit["at"], "note": "走访"},
        "long person": {**visit, "person": "王" * 51},
        "control character": {**visit, "note": "走访\x07"},
        "no time": {"person": "王建国", "note": "走访"},
    }
    answers = {name: await alerts.client.post(path, json=body, headers=auth(union)) for name, body in invalid.items()}
    assert {name: answer.status_code for name, answer in answers.items()} == dict.fromkeys(invalid, 422)
    assert answers["future"].json()["error"]["details"][0]["field"] == "at"
    assert answers["long note"].json()["error"]["details"][0]["field"] == "note"

    within_skew = await alerts.client.post(path, headers=auth(union),
                                           json={**visit, "at": iso(now + timedelta(minutes=1)), "note": "现场回访"})
    first = await alerts.client.post(path, json=visit, headers=auth(union))
    second = await alerts.client.post(path, headers=auth(union), json={
        "at": earlier.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "+08:00"),
        "person": "李红", "note": "首次走访"})

    assert (within_skew.status_code, first.status_code, second.status_code) == (201, 201, 201)
    visits = second.json()["visits"]
    assert [v["note"] for v in visits] == ["首次走访", "走访企业,约谈负责人,督促制定工资支付计划", "现场回访"]
    assert visits[1]["person"] == "王建国"
    assert visits[1]["body_id"] == union["body_id"]
    assert visits[1]["body_name"] == "合肥市包河区总工会"
    assert datetime.fromisoformat(visits[1]["at"]) == later
    assert (await alerts.client.get(f"/v1/alerts/{alert_id}", headers=auth(union))).json()["visits"] == visits
    events = await alerts.wait_for(
        lambda: when(alert_events(alerts, alert_id), lambda es: len(es) >= 4), what="visit events")
    assert [e.event_type for e in events][1:] == ["alert.visit_recorded"] * 3

    async with AsyncSession(alerts.db) as session:
        row = await session.get(Alert, alert_id)
        assert row is not None
        timeline = service.casework_timeline(row)
    assert all(isinstance(entry, VisitEntry) and entry.type == "visit" for entry in timeline)
    assert [entry.note for entry in timeline] == [v["note"] for v in visits]  # by when the visit took place
    detail = (await alerts.client.get(f"/v1/alerts/{alert_id}", headers=ADMIN)).json()
    in_timeline = [entry for entry in detail["timeline"] if entry["type"] == "visit"]
    assert [(e["at"], e["person"], e["note"]) for e in in_timeline] == [(v["at"], v["person"], v["note"])
                                                                         for v in visits]
    assert all(e["recorded_at"] for e in in_timeline)
    moments = [datetime.fromisoformat(entry["at"]) for entry in detail["timeline"]]
    assert moments == sorted(moments)  # among the alert's other entries, by time
    assert detail["timeline"].index(in_timeline[0]) == 0  # the first visit took place before the alert opened


async def test_after_resolution_only_a_visit_made_before_it_is_recorded(alerts: AlertsWorld) -> None:
    union = await alerts.body(region_code="340122")
    alert_id = await open_alert(alerts, "340122")
    await alerts.client.post(f"/v1/alerts/{alert_id}/resolve", headers=auth(union),
                             json={"outcome": "mediated", "note": "调解成功"})
    now = datetime.now(UTC)

    before = await alerts.client.post(f"/v1/alerts/{alert_id}/visits", headers=auth(union),
                                      json={"at": iso(now - timedelta(days=1)), "person": "王建国", "note": "补录"})
    after = await alerts.client.post(f"/v1/alerts/{alert_id}/visits", headers=auth(union),
                                     json={"at": iso(now + timedelta(minutes=2)), "person": "王建国", "note": "回访"})

    assert before.status_code == 201
    assert after.status_code == 409


async def test_messages_sent_after_the_owner_is_named_carry_the_leader_and_the_visits(alerts: AlertsWorld) -> None:
    union = await alerts.body(region_code="340181")
    await alerts.body(level="city", region_code="340100")
    code = credit_code()
    orange = make_assessed(region_code="340181", enterprise={"credit_code": code}, **ORANGE)
    await alerts.publish(orange)
    alert_id = (await alerts.alert_for(orange.report_id))["alert_id"]
    await alerts.client.post(f"/v1/alerts/{alert_id}/owner", headers=auth(union),
                             json={"person": "王建国", "title": "副主席"})
    await alerts.client.post(f"/v1/alerts/{alert_id}/visits", headers=auth(union), json={
        "at": iso(datetime(2026, 11, 20, 2, 0, tzinfo=UTC)), "person": "王建国", "note": "约谈企业负责人"})

    red = make_assessed(region_code="340181", enterprise={"credit_code": code}, **RED)
    await alerts.publish(red)
    await alerts.processed(red)
    payloads = await alerts.rows("SELECT event_type, payload FROM alerts.deliveries WHERE alert_id = :a "
                                 "ORDER BY created_at", a=alert_id)

    by_event = {event_type: messages.message_input(json.loads(payload))
                for event_type, payload in payloads}
    raised, opened = by_event["alert.level_raised"], by_event["alert.opened"]
    assert "- 包案领导 / Responsible leader: 王建国(副主席)" in messages.markdown(raised).splitlines()
    assert "- 走访记录 / Visits: 1（最近 / latest 2026-11-20 10:00 (UTC+8)）" in messages.markdown(raised)
    subject, text = messages.email_text(raised)
    assert "包案领导：王建国(副主席)" in text.splitlines()
    assert "Responsible leader: 王建国(副主席)" in text.splitlines()
    assert "包案领导" not in messages.markdown(opened)  # the message sent before the naming has none
    assert "包案领导" not in subject


async def test_has_owner_filters_the_list_and_the_gauge_counts_alerts_without_one(alerts: AlertsWorld) -> None:
    union = await alerts.body(region_code="340202")
    async with AsyncSession(alerts.db) as session:
        before, _ = await service.casework_gauges(session, datetime.now(UTC))
    owned, unowned = await open_alert(alerts, "340202"), await open_alert(alerts, "340202")
    async with AsyncSession(alerts.db) as session:
        opened, _ = await service.casework_gauges(session, datetime.now(UTC))
    named = await alerts.client.post(f"/v1/alerts/{owned}/owner", headers=auth(union),
                                     json={"person": "王建国", "title": "副主席"})
    assert named.status_code == 200

    async def listed(**params: str) -> list[str]:
        page = await alerts.client.get("/v1/alerts", params=params, headers=auth(union))
        assert page.status_code == 200, page.text
        return [item["alert_id"] for item in page.json()["items"]]

    assert await listed(has_owner="true") == [owned]
    assert await listed(has_owner="false") == [unowned]
    assert sorted(await listed()) == sorted([owned, unowned])
    admin_owned = (await alerts.client.get("/v1/alerts", params={"has_owner": "true", "limit": 200},
                                           headers=ADMIN)).json()["items"]
    assert owned in [item["alert_id"] for item in admin_owned]
    assert all(item["owner"] is not None for item in admin_owned)
    assert (await alerts.client.get("/v1/alerts", params={"has_owner": "maybe"}, headers=ADMIN)).status_code == 422
    async with AsyncSession(alerts.db) as session:
        after, _ = await service.casework_gauges(session, datetime.now(UTC))
    assert opened.get("orange", 0) == before.get("orange", 0) + 2
    assert after.get("orange", 0) == before.get("orange", 0) + 1
