"""Receipts per body on real Kafka and PostgreSQL: `POST /v1/alerts/{id}/ack` with the person's name, the one-click
receipt links in the messages (`/r/{token}`), and the alert detail (reports, reasons, timeline, receipts)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

from services.alerts import receipts
from services.alerts.messages import email_text, markdown, wecom_markdown
from services.alerts.settings import DEVELOPMENT_LINK_SECRET
from shared.events import AlertChanged, RiskLevel, Topic
from tests.alerts.conftest import ADMIN, AlertsWorld, alerts_world, make_assessed, when
from tests.support.receivers import webhook_receiver

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ORANGE = {"petition": "repeated"}  # arrears: the county union and the county labour inspectorate hear of it
RED = {"workers_involved": 320, "collective_action": ["road_blocking"]}
SCALE = 0.0005  # the orange deadline of 4 h becomes 7.2 s
ORANGE_DEADLINE = 14400 * SCALE


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def world(alerts_env: dict[str, str]) -> AsyncIterator[AlertsWorld]:
    async with alerts_world(alerts_env, ack_deadline_scale=SCALE) as world:
        yield world


async def detail(world: AlertsWorld, alert_id: str, auth: dict[str, str] | None = None) -> dict[str, Any]:
    response = await world.client.get(f"/v1/alerts/{alert_id}", headers=auth or ADMIN)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def ack(world: AlertsWorld, alert_id: str, body: dict[str, str], payload: Any) -> Any:
    return await world.client.post(f"/v1/alerts/{alert_id}/ack", headers={"Authorization": body["auth"]},
                                   json=payload)


async def alert_events(world: AlertsWorld, alert_id: str) -> list[AlertChanged]:
    rows = await world.rows("SELECT payload FROM alerts.outbox WHERE topic = :t ORDER BY id", t=Topic.alerts.value)
    events = [AlertChanged.model_validate(row[0] if isinstance(row[0], dict) else json.loads(row[0])) for row in rows]
    return [event for event in events if event.alert_id == alert_id]


async def receipt_links(world: AlertsWorld, alert_id: str) -> dict[str, str]:
    """The receipt link each body got, by body id, read from the queued deliveries' payloads."""
    rows = await world.rows("SELECT body_id, payload FROM alerts.deliveries WHERE alert_id = :a ORDER BY created_at",
                            a=alert_id)
    return {body_id: json.loads(payload)["alert"]["receipt_url"] for body_id, payload in rows}


def path_of(url: str) -> str:
    return urlsplit(url).path


async def opened(world: AlertsWorld, region_code: str, **report: Any) -> tuple[str, dict[str, str],
                                                                               dict[str, str]]:
    """An orange arrears alert in `region_code` told to a county union and a county labour inspectorate."""
    union = await world.body(region_code=region_code, name=f"{region_code} 县总工会")
    inspection = await world.body(kind="labour_inspection", region_code=region_code, name=f"{region_code} 劳动监察大队")
    event = make_assessed(region_code=region_code, **{**ORANGE, **report})
    await world.publish(event)
    alert = await world.alert_for(event.report_id)
    assert {n["body_id"] for n in alert["notified"]} == {union["body_id"], inspection["body_id"]}
    return alert["alert_id"], union, inspection


# --- POST /v1/alerts/{id}/ack --------------------------------------------------------------------------------------


async def test_a_receipt_needs_the_persons_name_within_limits(world: AlertsWorld) -> None:
    alert_id, union, _ = await opened(world, "350102")

    refused = {
        "no body": await world.client.post(f"/v1/alerts/{alert_id}/ack", headers={"Authorization": union["auth"]}),
        "empty": await ack(world, alert_id, union, {}),
        "blank person": await ack(world, alert_id, union, {"person": "   "}),
        "NUL": await ack(world, alert_id, union, {"person": "王\x00强"}),
        "too long": await ack(world, alert_id, union, {"person": "王" * 101}),
        "NUL in the note": await ack(world, alert_id, union, {"person": "王强", "note": "a\x00b"}),
        "long note": await ack(world, alert_id, union, {"person": "王强", "note": "x" * 2001}),
        "unknown field": await ack(world, alert_id, union, {"person": "王强", "role": "x"}),
    }

    assert {what: r.status_code for what, r in refused.items()} == dict.fromkeys(refused, 422)
    assert refused["empty"].json()["error"]["details"][0]["field"] == "person"
    assert (await detail(world, alert_id))["state"] == "open"
    assert await world.scalar("SELECT count(*) FROM alerts.acknowledgements WHERE alert_id = :a", a=alert_id) == 0


async def test_each_body_confirms_for_itself_and_a_union_receipt_acknowledges(world: AlertsWorld) -> None:
    alert_id, union, inspection = await opened(world, "350103")

    by_inspection = await ack(world, alert_id, inspection, {"person": "赵敏", "note": "已安排执法检查"})
    assert by_inspection.status_code == 200, by_inspection.text
    after_inspection = by_inspection.json()
    assert after_inspection["state"] == "open"  # an inspectorate's receipt is recorded, the alert stays open
    assert {n["body_id"]: n["acknowledged"] for n in after_inspection["notified"]} == {
        union["body_id"]: False, inspection["body_id"]: True}

    by_union = await ack(world, alert_id, union, {"person": "  钱伟  "})
    again = await ack(world, alert_id, union, {"person": "孙丽", "note": "重复确认"})

    assert by_union.status_code == again.status_code == 200
    final = again.json()
    assert final["state"] == "acknowledged"
    assert final["ack_deadline"] is None
    assert all(n["acknowledged"] for n in final["notified"])
    assert [(a["body_id"], a["body_name"], a["person"], a["note"], a["level"], a["via"])
            for a in final["acknowledgements"]] == [
        (inspection["body_id"], "350103 劳动监察大队", "赵敏", "已安排执法检查", "orange", "api"),
        (union["body_id"], "350103 县总工会", "钱伟", None, "orange", "api"),  # the repeat changed nothing
    ]
    events = await world.wait_for(lambda: when(alert_events(world, alert_id), lambda es: len(es) >= 2),
                                  what="alert events")
    assert [e.event_type for e in events] == ["alert.opened", "alert.acknowledged"]  # published once
    assert events[1].body_ids == [union["body_id"]]


async def test_an_inspectorates_receipt_does_not_stop_escalation_a_unions_does(world: AlertsWorld) -> None:
    alert_id, _, inspection = await opened(world, "350203")  # the only test in city 3502: its union is this one's
    city = await world.body(level="city", region_code="350200", name="350200 市总工会")

    assert (await ack(world, alert_id, inspection, {"person": "李娜"})).status_code == 200
    escalated = await world.wait_for(
        lambda: when(detail(world, alert_id), lambda d: len(d["escalations"]) == 1), timeout=60,
        what="escalation despite the inspectorate's receipt")
    assert escalated["state"] == "open"
    assert escalated["escalations"][0]["body_id"] == city["body_id"]

    by_city = await ack(world, alert_id, city, {"person": "周强"})
    assert by_city.json()["state"] == "acknowledged"
    await asyncio.sleep(ORANGE_DEADLINE * 1.5)  # a second deadline passes: nothing climbs further
    final = await detail(world, alert_id)
    assert final["state"] == "acknowledged"
    assert len(final["escalations"]) == 1


# --- one-click receipt links ---------------------------------------------------------------------------------------


async def test_a_receipt_link_works_once_and_records_the_receipt_as_the_api_would(world: AlertsWorld) -> None:
    alert_id, union, inspection = await opened(world, "350105")
    links = await receipt_links(world, alert_id)
    assert set(links) == {union["body_id"], inspection["body_id"]}
    assert links[union["body_id"]] != links[inspection["body_id"]]
    link = path_of(links[union["body_id"]])

    page = await world.client.get(link)
    assert page.status_code == 200
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["x-frame-options"] == "DENY"
    assert 'lang="zh-CN"' in page.text
    assert 'name="person"' in page.text
    assert "350105 县总工会" in page.text
    assert "Confirm receipt" in page.text
    assert (await detail(world, alert_id))["state"] == "open"  # looking at the page records nothing

    done = await world.client.post(link, data={"person": "吴芳"})
    assert done.status_code == 200
    assert 'data-status="confirmed"' in done.text
    assert "吴芳" in done.text
    after = await detail(world, alert_id)
    assert after["state"] == "acknowledged"
    assert [(a["body_id"], a["person"], a["via"]) for a in after["acknowledgements"]] == [
        (union["body_id"], "吴芳", "link")]

    reused = await world.client.post(link, data={"person": "郑军"})
    reopened = await world.client.get(link)
    assert reused.status_code == reopened.status_code == 410
    assert 'data-status="used"' in reused.text
    assert "此链接不能再次使用" in reopened.text
    assert "cannot be used again" in reopened.text
    assert len((await detail(world, alert_id))["acknowledgements"]) == 1

    # The inspectorate's own link still works, as JSON too; its receipt leaves the alert as it is.
    answer = await world.client.post(path_of(links[inspection["body_id"]]), json={"person": "冯涛"})
    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "confirmed"
    assert answer.json()["body_name"] == "350105 劳动监察大队"
    assert len((await detail(world, alert_id))["acknowledgements"]) == 2


async def test_a_link_confirmed_through_the_api_first_is_used(world: AlertsWorld) -> None:
    alert_id, union, _ = await opened(world, "350111")
    link = path_of((await receipt_links(world, alert_id))[union["body_id"]])

    assert (await ack(world, alert_id, union, {"person": "韩梅"})).status_code == 200
    page = await world.client.get(link)

    assert page.status_code == 410
    assert "韩梅" in page.text


async def test_tampered_expired_and_resolved_links_are_refused(world: AlertsWorld) -> None:
    alert_id, union, inspection = await opened(world, "350112")
    links = await receipt_links(world, alert_id)
    link = path_of(links[inspection["body_id"]])
    token = link.rsplit("/", 1)[1]

    tampered = link[:-1] + ("A" if link[-1] != "A" else "B")
    for bad in (tampered, "/r/" + token[:40], "/r/" + "A" * 72):
        for response in (await world.client.get(bad), await world.client.post(bad, data={"person": "x"})):
            assert response.status_code == 403, bad
            assert "此确认链接无效" in response.text
            assert "not valid" in response.text
    json_answer = await world.client.post(tampered, json={"person": "x"})
    assert (json_answer.status_code, json_answer.json()["status"]) == (403, "invalid")

    expired = receipts.sign(DEVELOPMENT_LINK_SECRET, receipts.ReceiptClaim(
        alert_id=alert_id, body_id=inspection["body_id"], level=RiskLevel.orange,
        expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    gone = await world.client.get(f"/r/{expired}")
    assert gone.status_code == 410
    assert "已过期" in gone.text
    assert "has expired" in gone.text

    no_name = await world.client.post(link, data={"person": " "})
    assert no_name.status_code == 422
    assert "请填写确认人姓名" in no_name.text
    assert 'name="person"' in no_name.text

    resolved = await world.client.post(f"/v1/alerts/{alert_id}/resolve", headers={"Authorization": union["auth"]},
                                       json={"outcome": "paid", "note": "已足额支付"})
    assert resolved.status_code == 200
    for response in (await world.client.get(link), await world.client.post(link, data={"person": "蒋华"})):
        assert response.status_code == 410
        assert "该预警已办结" in response.text
    assert (await detail(world, alert_id))["acknowledgements"] == []


async def test_a_raise_supersedes_the_older_link_and_asks_again(world: AlertsWorld) -> None:
    alert_id, union, _ = await opened(world, "350113")
    credit_code = (await detail(world, alert_id))["credit_code"]
    old_link = path_of((await receipt_links(world, alert_id))[union["body_id"]])
    assert (await world.client.post(old_link, data={"person": "沈洁"})).status_code == 200

    raising = make_assessed(region_code="350113", enterprise={"credit_code": credit_code}, **RED)
    await world.publish(raising)
    raised = await world.wait_for(lambda: when(detail(world, alert_id), lambda d: d["level"] == "red"),
                                  what="level raised")
    assert raised["state"] == "open"
    assert not next(n for n in raised["notified"] if n["body_id"] == union["body_id"])["acknowledged"]
    rows = await world.rows("SELECT payload FROM alerts.deliveries WHERE alert_id = :a AND body_id = :b "
                            "AND event_type = 'alert.level_raised'", a=alert_id, b=union["body_id"])
    new_link = path_of(json.loads(rows[0][0])["alert"]["receipt_url"])

    assert (await world.client.get(old_link)).status_code == 410  # used (at orange)
    assert (await world.client.post(new_link, data={"person": "沈洁"})).status_code == 200
    final = await detail(world, alert_id)
    assert final["state"] == "acknowledged"
    assert [(a["person"], a["level"]) for a in final["acknowledgements"]] == [("沈洁", "orange"), ("沈洁", "red")]


async def test_an_unused_link_of_a_lower_level_is_superseded(world: AlertsWorld) -> None:
    alert_id, _, inspection = await opened(world, "350114")
    credit_code = (await detail(world, alert_id))["credit_code"]
    old_link = path_of((await receipt_links(world, alert_id))[inspection["body_id"]])

    await world.publish(make_assessed(region_code="350114", enterprise={"credit_code": credit_code}, **RED))
    await world.wait_for(lambda: when(detail(world, alert_id), lambda d: d["level"] == "red"), what="raised")
    page = await world.client.get(old_link)

    assert page.status_code == 410
    assert "请使用最新消息中的确认链接" in page.text


# --- the detail ----------------------------------------------------------------------------------------------------


async def test_the_detail_has_the_reports_reasons_receipts_and_a_timeline_in_order(world: AlertsWorld) -> None:
    first = make_assessed(region_code="350121", **ORANGE)
    union = await world.body(region_code="350121", name="350121 县总工会",
                             channels=[{"type": "webhook", "url": "https://hooks.example.invalid/secret-path",
                                        "secret": "webhook-secret-0123456789"}])
    await world.body(kind="labour_inspection", region_code="350121", name="350121 劳动监察大队")
    await world.publish(first)
    alert_id = (await world.alert_for(first.report_id))["alert_id"]
    second = make_assessed(region_code="350121", enterprise={"credit_code": first.report.enterprise.credit_code},
                           kind="arrears", arrears={"amount_owed_cny": 2_500_000.0, "months_overdue": 5}, **RED)
    await world.publish(second)
    await world.wait_for(lambda: when(detail(world, alert_id), lambda d: d["level"] == "red"), what="raised")
    assert (await ack(world, alert_id, union, {"person": "杨帆", "note": "已联系企业"})).status_code == 200
    resolved = await world.client.post(f"/v1/alerts/{alert_id}/resolve", headers={"Authorization": union["auth"]},
                                       json={"outcome": "paid", "note": "已足额支付"})
    assert resolved.status_code == 200

    seen = await detail(world, alert_id, {"Authorization": union["auth"]})

    assert seen["url"].endswith(f"/inbox#/alerts/{alert_id}")
    assert [r["report_id"] for r in seen["reports"]] == [first.report_id, second.report_id]
    report = seen["reports"][1]
    assert report["kind"] == "arrears"
    assert report["enterprise"] == {"name": second.report.enterprise.name,
                                    "credit_code": second.report.enterprise.credit_code, "industry": "E"}
    assert report["arrears"]["amount_owed_cny"] == 2_500_000.0
    assert report["arrears"]["months_overdue"] == 5
    assert (report["workers_involved"], report["collective_action"]) == (320, ["road_blocking"])
    assert (report["level"], report["score"]) == ("red", second.score)
    assert report["summary"] == second.report.summary
    assert report["occurred_at"]
    assert {r["criterion"] for r in report["reasons"]} == {r.criterion for r in second.reasons}
    assert seen["reports"][0]["petition"] == "repeated"
    assert seen["reasons"]
    assert all({"criterion", "points", "text_zh", "text_en"} <= set(r) for r in seen["reasons"])
    assert [(a["person"], a["note"]) for a in seen["acknowledgements"]] == [("杨帆", "已联系企业")]

    timeline = seen["timeline"]
    assert [entry["at"] for entry in timeline] == sorted(entry["at"] for entry in timeline)
    types = [entry["type"] for entry in timeline]
    assert types[0] == "opened"
    # deliveries still retrying (the e-mail server is down) show their latest attempt, so may come after
    assert [t for t in types if t != "delivery"][-2:] == ["acknowledged", "resolved"]
    assert types.index("joined") < types.index("level_raised")
    assert {"notified", "delivery"} <= set(types)
    assert timeline[0]["report_id"] == first.report_id
    raised = next(e for e in timeline if e["type"] == "level_raised")
    assert (raised["from_level"], raised["to_level"], raised["report_id"]) == ("orange", "red", second.report_id)
    notified = [(e["body_name"], e["reason"]) for e in timeline if e["type"] == "notified"]
    assert ("350121 县总工会", "routing") in notified
    assert ("350121 县总工会", "level_raised") in notified
    acknowledged = next(e for e in timeline if e["type"] == "acknowledged")
    assert (acknowledged["body_name"], acknowledged["person"]) == ("350121 县总工会", "杨帆")
    closing = [e for e in timeline if e["type"] != "delivery"][-1]
    assert (closing["outcome"], closing["note"], closing["body_name"]) == ("paid", "已足额支付", "350121 县总工会")
    deliveries = [e for e in timeline if e["type"] == "delivery"]
    assert {e["channel"] for e in deliveries} == {"webhook", "email"}
    assert all(e["result"] in {"pending", "retrying", "delivered", "failed"} for e in deliveries)
    text = json.dumps(timeline, ensure_ascii=False)
    assert "hooks.example.invalid" not in text  # no target addresses
    assert "webhook-secret" not in text  # no secrets
    assert "ops@example.org" not in text
    assert "contact" not in json.dumps(seen)


# --- messages of every channel carry both links --------------------------------------------------------------------


async def test_messages_of_every_channel_carry_the_alert_link_and_the_bodys_receipt_link(
    world: AlertsWorld,
) -> None:
    with webhook_receiver() as receiver:
        body = await world.body(region_code="350141", name="350141 县总工会", channels=[
            {"type": "webhook", "url": f"{receiver.url}/hook", "secret": "webhook-secret-0123456789"},
            {"type": "wecom", "url": f"{receiver.url}/cgi-bin/webhook/send?key=k"},
            {"type": "dingtalk", "url": f"{receiver.url}/robot/send?access_token=t"},
            {"type": "email", "address": "union@example.org"},
        ])
        event = make_assessed(region_code="350141", **RED)
        await world.publish(event)
        alert_id = (await world.alert_for(event.report_id))["alert_id"]
        await world.wait_for(lambda: _ready(len(receiver.accepted) >= 3), what="webhook, WeCom and DingTalk")
        sent = {headers.get("x-alert-id", "robot"): json.loads(raw) for headers, raw in receiver.accepted}
        robots = [json.loads(raw) for headers, raw in receiver.accepted if "x-alert-id" not in headers]
        mail_payload = await world.scalar("SELECT payload FROM alerts.deliveries WHERE alert_id = :a "
                                          "AND body_id = :b AND channel_type = 'email'", a=alert_id,
                                          b=body["body_id"])

    alert_url = (await detail(world, alert_id))["url"]
    webhook = sent[alert_id]
    receipt_url = webhook["alert"]["receipt_url"]
    assert webhook["alert"]["url"] == alert_url
    assert urlsplit(receipt_url).path.startswith("/r/")
    claim = receipts.verify(DEVELOPMENT_LINK_SECRET, receipt_url.rsplit("/", 1)[1], datetime.now(UTC))
    assert isinstance(claim, receipts.ReceiptClaim)
    assert (claim.alert_id, claim.body_id, claim.level) == (alert_id, body["body_id"], RiskLevel.red)

    wecom = next(r["markdown"]["content"] for r in robots if "content" in r.get("markdown", {}))
    dingtalk = next(r["markdown"]["text"] for r in robots if "text" in r.get("markdown", {}))
    assert wecom == wecom_markdown(webhook)
    assert dingtalk == markdown(webhook)
    _, mail = email_text(json.loads(mail_payload))
    for name, text in (("wecom", wecom), ("dingtalk", dingtalk), ("email", mail)):
        assert alert_url in text, (name, alert_url, text)
        assert receipt_url in text, (name, receipt_url, text)
    assert not [line for line in wecom.split("\n") if line.startswith("- ")]


async def _ready(value: bool) -> bool:
    return value

