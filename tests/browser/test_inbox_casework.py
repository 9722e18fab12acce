"""The inbox's casework in a real browser, on alerts made by the real pipeline (intake → risk → alerts): the
receipt form (no browser dialog; the person is required as the server requires it) and which notified bodies have
confirmed, the resolve form that chooses no outcome for the body, the visit form, and a detail panel that says in
words what each report said (the kind's details, collective actions, petition), the deadline's rule and region
names."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Dialog, Page, expect

from tests.browser.test_inbox import ADMIN, wait_for
from tests.conftest import StartService
from tests.factories import make_report_body
from tests.support.receivers import WebhookReceiver, webhook_receiver

pytestmark = pytest.mark.browser

REGION = "320106"
SHANGHAI = ZoneInfo("Asia/Shanghai")
RED = {"workers_involved": 320, "collective_action": ["road_blocking", "work_stoppage"]}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as server:
        yield server


def body(alerts_url: str, receiver: WebhookReceiver, name: str, kind: str) -> dict[str, Any]:
    created = httpx.post(f"{alerts_url}/v1/bodies", headers=ADMIN, timeout=10, json={
        "name": name, "kind": kind, "level": "county", "region_code": REGION,
        "channels": [{"type": "webhook", "url": receiver.url, "secret": "browser-webhook-secret-0123456789"}]})
    assert created.status_code == 201, created.text
    return {"body_id": created.json()["body_id"], "token": created.json()["token"],
            "auth": {"Authorization": f"Bearer {created.json()['token']}"}}


@pytest.fixture
def world(start_service: StartService, receiver: WebhookReceiver, isolated_env: dict[str, str]) -> dict[str, Any]:
    """A county union and a mediation centre for 320106, both told of three red alerts: wage arrears, a labour
    dispute and a workforce-stability event."""
    intake = start_service("intake", **isolated_env)
    start_service("risk", **isolated_env)
    alerts = start_service("alerts", **isolated_env)
    union = body(alerts.url, receiver, "南京市鼓楼区总工会", "union")
    mediation = body(alerts.url, receiver, "鼓楼区劳动争议调解中心", "mediation_centre")
    unit = httpx.post(f"{intake.url}/v1/units", headers=ADMIN, timeout=10,
                      json={"name": "鼓楼区某街道工会", "region_code": REGION})
    assert unit.status_code == 201, unit.text
    reports = {
        "arrears": make_report_body(region_code=REGION, enterprise={"name": "南京某建筑劳务有限公司"},
                                    arrears={"amount_owed_cny": 860000, "months_overdue": 4}, **RED),
        "dispute": make_report_body(kind="dispute", region_code=REGION, enterprise={"name": "南京某电子科技有限公司"},
                                    dispute={"dispute_type": "social_insurance", "stage": "mediation_failed"},
                                    petition="skip_level", **RED),
        "stability": make_report_body(kind="stability", region_code=REGION,
                                      enterprise={"name": "南京某纺织有限公司"},
                                      stability={"event_type": "mass_layoff", "layoff_without_consultation": True},
                                      **RED),
    }
    report_ids = {}
    for kind, report in reports.items():
        accepted = httpx.post(f"{intake.url}/v1/reports", json=report, timeout=10,
                              headers={"Authorization": f"Bearer {unit.json()['api_key']}"})
        assert accepted.status_code == 202, accepted.text
        report_ids[kind] = accepted.json()["report_id"]

    def listed() -> dict[str, dict[str, Any]] | None:
        response = httpx.get(f"{alerts.url}/v1/alerts", headers=union["auth"], timeout=10)
        assert response.status_code == 200, response.text
        found = {kind: next((item for item in response.json()["items"] if rid in item["report_ids"]), None)
                 for kind, rid in report_ids.items()}
        if not all(found.values()):
            return None
        return {kind: item for kind, item in found.items() if item is not None}

    found = wait_for(listed, what="the three red alerts listed for the county union")
    for alert in found.values():
        assert alert["level"] == "red", alert
        assert {n["body_id"] for n in alert["notified"]} >= {union["body_id"], mediation["body_id"]}, alert
    return {"alerts_url": alerts.url, "union": union, "mediation": mediation, "alerts": found}


def detail(world: dict[str, Any], kind: str) -> dict[str, Any]:
    alert_id = world["alerts"][kind]["alert_id"]
    response = httpx.get(f"{world['alerts_url']}/v1/alerts/{alert_id}", headers=world["union"]["auth"], timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


def sign_in(page: Page, world: dict[str, Any], who: str = "union") -> None:
    page.goto(f"{world['alerts_url']}/inbox")
    page.locator("#token").fill(world[who]["token"])
    page.locator("#sign-in").click()
    expect(page.locator("#signed-in")).to_be_visible()


def test_receipt_form_refuses_a_blank_person_then_the_detail_shows_who_confirmed(world: dict[str, Any], page: Page,
                                                                                tmp_path: Any) -> None:
    alert_id = world["alerts"]["arrears"]["alert_id"]
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url) if request.method == "POST" else None)
    dialogs: list[str] = []

    def refuse(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", refuse)
    sign_in(page, world)
    card = page.locator(f'ul#alerts > li.alert[data-alert-id="{alert_id}"]')
    card.locator("button.ack").click()
    form = card.locator("form.receipt-form")
    expect(form).to_be_visible()
    expect(card.locator("button.ack")).to_have_attribute("aria-expanded", "true")

    # Blank (spaces only): refused in the page with the server's words; nothing is sent.
    form.locator('input[name="person"]').fill("   ")
    form.locator("button.confirm-ack").click()
    expect(form.locator(".form-error")).to_have_text("请填写确认人姓名")
    expect(form.locator('input[name="person"]')).to_be_focused()
    assert not [url for url in requests if url.endswith("/ack")], requests
    # The server refuses the same with a 422 (what the client check mirrors).
    refused = httpx.post(f"{world['alerts_url']}/v1/alerts/{alert_id}/ack", headers=world["union"]["auth"],
                         json={"person": "   "}, timeout=10)
    assert refused.status_code == 422, refused.text
    assert detail(world, "arrears")["state"] == "open"

    form.locator('input[name="person"]').fill("王主任")
    form.locator('textarea[name="ack_note"]').fill("已电话联系企业负责人")
    form.locator("button.confirm-ack").click()
    expect(card).to_have_attribute("data-state", "acknowledged")
    expect(card.locator("form.receipt-form")).to_have_count(0)
    expect(page.locator("#status")).to_contain_text("已确认接收预警")
    assert dialogs == [], dialogs

    # The detail panel shows the answer: the union confirmed (by whom), the mediation centre has not.
    panel = page.locator("#detail")
    expect(panel).to_be_visible()
    expect(page).to_have_url(f"{world['alerts_url']}/inbox#/alerts/{alert_id}")
    confirmations = panel.locator(".confirmations")
    union_row = confirmations.locator(f'li[data-body-id="{world["union"]["body_id"]}"]')
    mediation_row = confirmations.locator(f'li[data-body-id="{world["mediation"]["body_id"]}"]')
    expect(union_row).to_have_attribute("data-confirmed", "true")
    expect(union_row).to_contain_text("南京市鼓楼区总工会:已确认(王主任")
    expect(mediation_row).to_have_attribute("data-confirmed", "false")
    expect(mediation_row).to_have_text("鼓楼区劳动争议调解中心:未确认")
    expect(panel.locator(".acks")).to_contain_text("已电话联系企业负责人")
    expect(panel.locator('.timeline li[data-type="acknowledged"]')).to_contain_text(
        "确认接收 · 南京市鼓楼区总工会 · 王主任")
    saved = detail(world, "arrears")
    assert [(a["body_id"], a["person"], a["note"]) for a in saved["acknowledgements"]] == [
        (world["union"]["body_id"], "王主任", "已电话联系企业负责人")], saved
    page.screenshot(path=str(tmp_path / "inbox-receipt.png"), full_page=True)

    # The mediation centre still has its own receipt to give: the button is there for it, not for the union.
    other = page.context.new_page()
    sign_in(other, world, "mediation")
    other_card = other.locator(f'ul#alerts > li.alert[data-alert-id="{alert_id}"]')
    expect(other_card).to_have_attribute("data-state", "acknowledged")
    expect(other_card.locator("button.ack")).to_have_count(1)
    expect(card.locator("button.ack")).to_have_count(0)
    other.close()


def test_resolve_chooses_no_outcome_and_is_refused_until_one_is_chosen(world: dict[str, Any], page: Page) -> None:
    alert_id = world["alerts"]["dispute"]["alert_id"]
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url) if request.method == "POST" else None)
    sign_in(page, world)
    card = page.locator(f'ul#alerts > li.alert[data-alert-id="{alert_id}"]')
    card.locator("button.resolve").click()
    form = card.locator("form.resolve-form")
    outcome = form.locator('select[name="outcome"]')
    expect(outcome).to_have_value("")
    expect(outcome.locator("option").first).to_have_text("请选择")
    form.locator('textarea[name="note"]').fill("双方达成和解协议。")
    form.locator("button.confirm-resolve").click()
    expect(form.locator(".form-error")).to_have_text("请选择处理结果")
    expect(outcome).to_be_focused()
    assert not [url for url in requests if url.endswith("/resolve")], requests
    # What the server answers to the same (the page never sends it): 422.
    refused = httpx.post(f"{world['alerts_url']}/v1/alerts/{alert_id}/resolve", headers=world["union"]["auth"],
                         json={"note": "双方达成和解协议。"}, timeout=10)
    assert refused.status_code == 422, refused.text
    assert detail(world, "dispute")["state"] == "open"

    # English: the empty choice and the refusal are translated; the draft is kept.
    page.locator("#lang-toggle").click()
    expect(outcome.locator("option").first).to_have_text("Choose…")
    expect(form.locator(".form-error")).to_have_text("Choose an outcome")
    expect(form.locator('textarea[name="note"]')).to_have_value("双方达成和解协议。")
    outcome.select_option("mediated")
    form.locator("button.confirm-resolve").click()
    expect(page.locator("#status")).to_contain_text("Alert resolved")
    resolved = detail(world, "dispute")
    assert (resolved["state"], resolved["outcome"], resolved["note"]) == ("resolved", "mediated", "双方达成和解协议。")


def test_detail_says_what_happened_in_words_and_records_a_visit(world: dict[str, Any], page: Page,
                                                                tmp_path: Any) -> None:
    sign_in(page, world)
    panel = page.locator("#detail")

    # Wage arrears: amount and months, collective actions and petition in words, region by name, deadline rule.
    arrears = world["alerts"]["arrears"]
    page.locator(f'ul#alerts > li.alert[data-alert-id="{arrears["alert_id"]}"] button.details').click()
    expect(panel).to_be_visible()
    report = panel.locator(".reports > li.report")
    expect(report).to_have_count(1)
    expect(report).to_contain_text("拖欠 860000.00 元,4 个月")
    expect(report).to_contain_text("群体性行为:堵路、停工")
    expect(report).not_to_contain_text("road_blocking")
    expect(report).to_contain_text("信访:无信访")
    expect(report).to_contain_text("涉及职工 320 人")
    expect(panel.locator(".meta")).to_contain_text("南京市 鼓楼区")
    expect(panel).not_to_contain_text(REGION)
    rule = detail(world, "arrears")["ack_deadline_rule"]
    assert rule == "clock_hours", rule
    expect(panel.locator(".deadline")).to_contain_text("时限规则:按小时计(昼夜连续)")
    expect(panel.locator('.timeline li[data-type="opened"]')).to_contain_text("预警生成")
    expect(panel.locator('.timeline li[data-type="notified"]').first).to_contain_text("已通知")

    # A labour dispute: its type and stage, a skip-level petition.
    page.goto(f"{world['alerts_url']}/inbox#/alerts/{world['alerts']['dispute']['alert_id']}")
    expect(panel.locator(".reports")).to_contain_text("争议类型:社会保险;所处阶段:调解不成")
    expect(panel.locator(".reports")).to_contain_text("信访:越级信访")
    # A stability event: its type, in both languages.
    page.goto(f"{world['alerts_url']}/inbox#/alerts/{world['alerts']['stability']['alert_id']}")
    expect(panel.locator(".reports")).to_contain_text("事件类型:规模性裁员")
    expect(panel.locator(".reports")).to_contain_text("裁员未依法听取工会或职工意见")
    page.locator("#lang-toggle").click()
    expect(panel.locator(".reports")).to_contain_text("Event type: Mass layoff")
    expect(panel.locator(".reports")).to_contain_text("Collective action: Road blocking, Work stoppage")
    expect(panel.locator(".meta")).to_contain_text("Nanjing")
    expect(panel.locator(".deadline")).to_contain_text("clock hours, day and night")
    page.locator("#lang-toggle").click()

    # A visit: the time is prefilled with now (the browser's time, Asia/Shanghai), a time in the future is refused
    # in the page, then the visit is recorded with its offset and shown in the timeline.
    form = panel.locator("form.visit-form")
    now = datetime.now(SHANGHAI)
    prefilled = form.locator('input[name="visit_at"]').input_value()
    assert abs(datetime.fromisoformat(prefilled).replace(tzinfo=SHANGHAI) - now) < timedelta(minutes=5), prefilled
    future = (now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    form.locator('input[name="visit_at"]').fill(future)
    form.locator('input[name="visit_person"]').fill("张干事")
    form.locator('textarea[name="visit_note"]').fill("走访企业,督促制定安置方案。")
    form.locator("button[type=submit]").click()
    expect(form.locator(".form-error")).to_have_text("走访时间不能晚于当前时间")
    assert detail(world, "stability")["visits"] == []

    form.locator('input[name="visit_at"]').fill(prefilled)  # back to now, as prefilled
    form.locator("button[type=submit]").click()
    expect(page.locator("#status")).to_contain_text("已记录走访:张干事")
    entry = panel.locator('.timeline li[data-type="visit"]')
    expect(entry).to_have_count(1)
    expect(entry).to_contain_text("走访 · 南京市鼓楼区总工会 · 张干事 · 走访企业,督促制定安置方案。")
    (visit,) = detail(world, "stability")["visits"]
    # Sent as ISO 8601 with the browser's offset (+08:00): the same moment the form showed.
    assert datetime.fromisoformat(visit["at"]) == datetime.fromisoformat(prefilled).replace(tzinfo=SHANGHAI), visit
    assert (visit["person"], visit["note"]) == ("张干事", "走访企业,督促制定安置方案。"), visit
    page.screenshot(path=str(tmp_path / "inbox-detail-visit.png"), full_page=True)
