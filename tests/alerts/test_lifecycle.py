"""Alert lifecycle on real Kafka and PostgreSQL: routing, dedup by event id, join, level raise, ack and resolve.

Each test works in its own province or city so that the bodies of one do not cover the reports of another.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from services.alerts.working_time import SHANGHAI, next_working_day
from shared.events import AlertChanged, Topic, parse_event
from shared.labels import label
from tests.alerts.conftest import ADMIN, AlertsWorld, make_assessed, when
from tests.conftest import KafkaReader
from tests.factories import credit_code

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

RED = {"workers_involved": 320, "collective_action": ["road_blocking"]}
ORANGE = {"petition": "repeated"}  # the default arrears report (44) plus 10
BLUE = {"kind": "dispute", "workers_involved": 45}  # 15 + wages 5 + migrant workers 5 = 25


async def alert_events(world: AlertsWorld, alert_id: str) -> list[AlertChanged]:
    reader = KafkaReader(world.env["KAFKA_BOOTSTRAP_SERVERS"], world.env["KAFKA_TOPIC_PREFIX"])
    events = [parse_event(r.value) for r in await reader.read_all(Topic.alerts.value)]  # type: ignore[attr-defined]
    return [e for e in events if isinstance(e, AlertChanged) and e.alert_id == alert_id]


def notified(alert: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted((n["body_id"], n["reason"]) for n in alert["notified"])


async def test_a_red_arrears_alert_reaches_exactly_the_bodies_of_the_routing_table(alerts: AlertsWorld) -> None:
    county_union = await alerts.body(region_code="320106")
    city_union = await alerts.body(level="city", region_code="320100")
    county_mediation = await alerts.body(kind="mediation_centre", region_code="320106")
    inspection = await alerts.body(kind="labour_inspection", region_code="320106")
    await alerts.body(kind="arbitration", region_code="320106")  # orange + mediation_failed disputes only
    await alerts.body(kind="mediation_centre", level="city", region_code="320100")  # the county one comes first
    event = make_assessed(region_code="320106", **RED)

    await alerts.publish(event, event)  # delivered twice: handled once
    alert = await alerts.alert_for(event.report_id)
    await alerts.processed(event)

    expected = sorted((b["body_id"], "routing") for b in (county_union, city_union, county_mediation, inspection))
    assert alert["level"] == "red"
    assert notified(alert) == expected
    assert len(alert["deliveries"]) == 4
    assert await alerts.scalar("SELECT count(*) FROM alerts.alerts WHERE credit_code = :c",
                               c=event.report.enterprise.credit_code) == 1
    opened = await alerts.wait_for(lambda: alert_events(alerts, alert["alert_id"]), what="alert.opened published")
    assert [e.event_type for e in opened] == ["alert.opened"]
    assert sorted(opened[0].body_ids) == sorted(b for b, _ in expected)


async def test_reports_join_the_open_alert_and_only_a_higher_level_notifies_again(alerts: AlertsWorld) -> None:
    county_union = await alerts.body(region_code="320505")
    county_mediation = await alerts.body(kind="mediation_centre", region_code="320505")
    city_union = await alerts.body(level="city", region_code="320500")
    code = credit_code()
    yellow = make_assessed(region_code="320505", enterprise={"credit_code": code})
    blue = make_assessed(region_code="320505", enterprise={"credit_code": code}, arrears={"amount_owed_cny": 0},
                         workers_involved=45, migrant_workers_involved=0)
    another_yellow = make_assessed(region_code="320505", enterprise={"credit_code": code})
    red = make_assessed(region_code="320505", enterprise={"credit_code": code}, **RED)
    assert (yellow.level, blue.level, red.level) == ("yellow", "blue", "red")

    await alerts.publish(yellow)
    first = await alerts.alert_for(yellow.report_id)
    await alerts.publish(blue, another_yellow)
    await alerts.processed(another_yellow)
    joined = (await alerts.client.get(f"/v1/alerts/{first['alert_id']}", headers=ADMIN)).json()
    await alerts.publish(red)
    await alerts.processed(red)
    raised = (await alerts.client.get(f"/v1/alerts/{first['alert_id']}", headers=ADMIN)).json()

    assert notified(first) == sorted([(county_union["body_id"], "routing"), (county_mediation["body_id"], "routing")])
    assert joined["report_ids"] == [yellow.report_id, blue.report_id, another_yellow.report_id]
    assert notified(joined) == notified(first)
    assert raised["level"] == "red"
    assert raised["report_ids"][-1] == red.report_id
    assert notified(raised) == sorted([
        *notified(first), (county_union["body_id"], "level_raised"), (county_mediation["body_id"], "level_raised"),
        (city_union["body_id"], "level_raised"),
    ])
    events = await alerts.wait_for(
        lambda: when(alert_events(alerts, first["alert_id"]), lambda es: len(es) >= 2), what="level_raised event")
    assert [e.event_type for e in events] == ["alert.opened", "alert.level_raised"]


async def test_low_levels_open_nothing_and_each_kind_has_its_own_alert(alerts: AlertsWorld) -> None:
    await alerts.body(region_code="320205")
    code = credit_code()
    blue = make_assessed(region_code="320205", enterprise={"credit_code": code}, **BLUE)
    arrears = make_assessed(region_code="320205", enterprise={"credit_code": code}, **ORANGE)
    dispute = make_assessed(region_code="320205", enterprise={"credit_code": code}, kind="dispute",
                            workers_involved=320, collective_action=["road_blocking"])

    await alerts.publish(blue)
    await alerts.processed(blue)
    assert await alerts.scalar("SELECT count(*) FROM alerts.alerts WHERE credit_code = :c", c=code) == 0
    await alerts.publish(arrears, dispute)
    first, second = await alerts.alert_for(arrears.report_id), await alerts.alert_for(dispute.report_id)

    assert first["alert_id"] != second["alert_id"]
    assert (first["kind"], first["level"], second["kind"], second["level"]) == ("arrears", "orange", "dispute", "red")


async def test_only_a_notified_body_acknowledges_and_resolves(alerts: AlertsWorld) -> None:
    union = await alerts.body(region_code="330102")
    stranger = await alerts.body(region_code="330105")
    event = make_assessed(region_code="330102", **ORANGE)
    await alerts.publish(event)
    alert_id = (await alerts.alert_for(event.report_id))["alert_id"]
    path = f"/v1/alerts/{alert_id}"

    assert (await alerts.client.get(path, headers={"Authorization": stranger["auth"]})).status_code == 404
    receipt = {"person": "李明"}
    assert (await alerts.client.post(f"{path}/ack", headers={"Authorization": stranger["auth"]},
                                     json=receipt)).status_code == 404
    assert (await alerts.client.post(f"{path}/ack", headers=ADMIN, json=receipt)).status_code == 403
    assert (await alerts.client.post(f"{path}/ack", json=receipt)).status_code == 401
    listed = (await alerts.client.get("/v1/alerts", headers={"Authorization": stranger["auth"]})).json()
    assert alert_id not in [a["alert_id"] for a in listed["items"]]

    auth = {"Authorization": union["auth"]}
    acked = await alerts.client.post(f"{path}/ack", headers=auth, json=receipt)
    again = await alerts.client.post(f"{path}/ack", headers=auth, json=receipt)
    bad = await alerts.client.post(f"{path}/resolve", headers=auth, json={"outcome": "forgotten", "note": "x"})
    resolved = await alerts.client.post(f"{path}/resolve", headers=auth, json={"outcome": "paid", "note": "已清偿"})
    twice = await alerts.client.post(f"{path}/resolve", headers=auth, json={"outcome": "paid", "note": "again"})

    assert (acked.status_code, acked.json()["state"]) == (200, "acknowledged")
    assert (again.status_code, again.json()["state"]) == (200, "acknowledged")
    assert bad.status_code == 422
    assert bad.json()["error"]["details"][0]["field"] == "outcome"
    assert (resolved.status_code, resolved.json()["state"], resolved.json()["outcome"]) == (200, "resolved", "paid")
    assert twice.status_code == 409
    events = await alerts.wait_for(
        lambda: when(alert_events(alerts, alert_id), lambda es: len(es) >= 3), what="lifecycle events")
    assert [e.event_type for e in events] == ["alert.opened", "alert.acknowledged", "alert.resolved"]

    after = make_assessed(region_code="330102", enterprise={"credit_code": event.report.enterprise.credit_code},
                          **ORANGE)
    await alerts.publish(after)
    assert (await alerts.alert_for(after.report_id))["alert_id"] != alert_id


async def test_body_tokens_are_shown_once_and_secrets_never(alerts: AlertsWorld) -> None:
    body = await alerts.body(region_code="330106", channels=[
        {"type": "webhook", "url": "http://127.0.0.1:9/hook", "secret": "s" * 24},
        {"type": "dingtalk", "url": "https://oapi.dingtalk.com/robot/send?access_token=t", "secret": "d" * 20},
    ])

    view = await alerts.client.get(f"/v1/bodies/{body['body_id']}", headers={"Authorization": body["auth"]})
    bad = await alerts.client.post("/v1/bodies", headers=ADMIN, json={
        "name": "x", "kind": "union", "level": "city", "region_code": "330106",
        "channels": [{"type": "webhook", "url": "not a url", "secret": "short"}]})
    deactivated = await alerts.client.delete(f"/v1/bodies/{body['body_id']}", headers=ADMIN)
    after = await alerts.client.get("/v1/alerts", headers={"Authorization": body["auth"]})

    assert view.status_code == 200
    assert "secret" not in view.text
    assert body["token"] not in view.text
    assert bad.status_code == 422
    assert {d["field"] for d in bad.json()["error"]["details"]} >= {"region_code", "channels.0.webhook.url"}
    assert deactivated.status_code == 204
    assert after.status_code == 401


# --- working-time deadlines and the body's language (issue 12) ------------------------------------------------------


async def test_a_yellow_alert_stored_by_the_consumer_carries_its_working_day_deadline_and_rule(
    alerts: AlertsWorld,
) -> None:
    county = await alerts.body(region_code="350102")
    event = make_assessed(region_code="350102")  # the default arrears report scores yellow

    await alerts.publish(event)
    alert = await alerts.alert_for(event.report_id)
    (timer, working, rule, opened_at), = await alerts.rows(
        "SELECT ack_deadline, ack_deadline_working, ack_deadline_rule, opened_at FROM alerts.alerts WHERE id = :i",
        i=alert["alert_id"])
    (payload,) = await alerts.rows("SELECT payload FROM alerts.deliveries WHERE alert_id = :i", i=alert["alert_id"])
    acked = await alerts.client.post(f"/v1/alerts/{alert['alert_id']}/ack", headers={"Authorization": county["auth"]},
                                     json={"person": "张三"})

    local = opened_at.astimezone(SHANGHAI)
    due_day, weekends_only = next_working_day(local.date())
    expected = datetime.combine(due_day, local.time(), tzinfo=SHANGHAI)
    expected_rule = "next_working_day_weekends_only" if weekends_only else "next_working_day"
    assert alert["level"] == "yellow"
    assert expected - opened_at >= timedelta(days=1)
    assert working == timer == expected  # ACK_DEADLINE_SCALE 1: the timer is the deadline
    assert rule == expected_rule
    assert datetime.fromisoformat(alert["ack_deadline"]) == expected
    assert alert["ack_deadline_rule"] == expected_rule
    assert alert["ack_deadline_rule_text"] == label("deadline_rule", expected_rule).both
    webhook = json.loads(payload[0])
    assert webhook["language"] == "zh-en"
    assert datetime.fromisoformat(webhook["alert"]["ack_deadline"]) == expected
    assert webhook["alert"]["ack_deadline_rule"] == expected_rule
    assert label("deadline_rule", expected_rule).both in webhook["message"]["markdown"]
    assert acked.status_code == 200
    assert (acked.json()["ack_deadline"], acked.json()["ack_deadline_rule"]) == (None, None)


async def test_a_body_reads_zh_en_unless_it_chooses_and_finds_itself_at_v1_me(alerts: AlertsWorld) -> None:
    default = await alerts.body(region_code="350103")
    channels = [{"type": "email", "address": "ops@example.org"}]
    english = await alerts.client.post("/v1/bodies", headers=ADMIN, json={
        "name": "Fuzhou Taijiang union", "kind": "union", "level": "county", "region_code": "350103",
        "channels": channels, "language": "en"})
    unknown = await alerts.client.post("/v1/bodies", headers=ADMIN, json={
        "name": "x", "kind": "union", "level": "county", "region_code": "350103", "channels": channels,
        "language": "fr"})
    patched = await alerts.client.patch(f"/v1/bodies/{default['body_id']}", headers=ADMIN, json={"language": "zh"})
    bad_patch = await alerts.client.patch(f"/v1/bodies/{default['body_id']}", headers=ADMIN,
                                          json={"language": "de"})
    itself = await alerts.client.get(f"/v1/bodies/{default['body_id']}", headers={"Authorization": default["auth"]})
    me = await alerts.client.get("/v1/me", headers={"Authorization": default["auth"]})
    english_me = await alerts.client.get("/v1/me", headers={"Authorization": f"Bearer {english.json()['token']}"})
    admin_me = await alerts.client.get("/v1/me", headers=ADMIN)
    anonymous = await alerts.client.get("/v1/me")
    listed = await alerts.client.get("/v1/bodies", headers=ADMIN, params={"region_code": "350103"})

    assert english.status_code == 201
    assert unknown.status_code == 422
    assert [d["field"] for d in unknown.json()["error"]["details"]] == ["language"]
    assert patched.status_code == 200
    assert patched.json()["language"] == "zh"
    assert bad_patch.status_code == 422
    assert itself.json()["language"] == "zh"
    assert me.status_code == 200
    assert me.json() == {"body_id": default["body_id"], "name": "350103 county union", "kind": "union",
                         "level": "county", "region_code": "350103", "language": "zh"}
    assert english_me.json()["language"] == "en"
    assert admin_me.status_code == 404
    assert anonymous.status_code == 401
    assert sorted(b["language"] for b in listed.json()) == ["en", "zh"]
