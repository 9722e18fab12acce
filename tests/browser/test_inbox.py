"""The body's alert inbox (GET /inbox on alerts) in a real browser, on an alert made by the real pipeline:
intake → Kafka → risk → Kafka → alerts, with a county union federation registered for the report's region."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Dialog, Page, expect

from tests.browser.conftest import DESKTOP, MOBILE
from tests.conftest import ADMIN_TOKEN, StartService
from tests.factories import make_report_body
from tests.support.receivers import WebhookReceiver, webhook_receiver

pytestmark = pytest.mark.browser

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
REGION = "320106"
ENTERPRISE = "南京某电子科技有限公司"


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as server:
        yield server


def wait_for(check: Callable[[], Any], timeout: float = 45.0, what: str = "condition") -> Any:
    """Polls the API while the pipeline works (set-up only; browser assertions use Playwright's auto-wait)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.25)
    raise AssertionError(f"{what} not reached within {timeout} s")


@pytest.fixture
def red_alert(start_service: StartService, receiver: WebhookReceiver, isolated_env: dict[str, str]) -> dict[str, Any]:
    """The three services running, a county union for 320106 with a webhook, and one red alert it can see."""
    intake = start_service("intake", **isolated_env)
    start_service("risk", **isolated_env)
    alerts = start_service("alerts", **isolated_env)
    created = httpx.post(f"{alerts.url}/v1/bodies", headers=ADMIN, timeout=10, json={
        "name": "南京市鼓楼区总工会", "kind": "union", "level": "county", "region_code": REGION,
        "channels": [{"type": "webhook", "url": receiver.url, "secret": "browser-webhook-secret-0123456789"}],
    })
    assert created.status_code == 201, created.text
    body_token = created.json()["token"]
    unit = httpx.post(f"{intake.url}/v1/units", headers=ADMIN, timeout=10,
                      json={"name": "鼓楼区某街道工会", "region_code": REGION})
    assert unit.status_code == 201, unit.text
    report = make_report_body(region_code=REGION, workers_involved=320, collective_action=["road_blocking"],
                              enterprise={"name": ENTERPRISE})
    accepted = httpx.post(f"{intake.url}/v1/reports", json=report, timeout=10,
                          headers={"Authorization": f"Bearer {unit.json()['api_key']}"})
    assert accepted.status_code == 202, accepted.text
    report_id = accepted.json()["report_id"]
    body_auth = {"Authorization": f"Bearer {body_token}"}

    def listed() -> dict[str, Any] | None:
        response = httpx.get(f"{alerts.url}/v1/alerts", headers=body_auth, timeout=10)
        assert response.status_code == 200, response.text
        return next((item for item in response.json()["items"] if report_id in item.get("report_ids", [])), None)

    alert = wait_for(listed, what="the red alert listed for the county union")
    assert alert["level"] == "red", alert
    assert alert["state"] == "open", alert
    return {"alerts_url": alerts.url, "token": body_token, "auth": body_auth, "alert": alert,
            "intake_url": intake.url, "unit_key": unit.json()["api_key"]}


def get_alert(setup: dict[str, Any]) -> dict[str, Any]:
    response = httpx.get(f"{setup['alerts_url']}/v1/alerts/{setup['alert']['alert_id']}", headers=setup["auth"],
                         timeout=10)
    assert response.status_code == 200, response.text
    return dict(response.json())


@pytest.mark.parametrize("viewport", [DESKTOP, MOBILE], ids=["desktop", "mobile-360x800"])
def test_county_union_acknowledges_and_resolves_a_red_alert_in_the_inbox(red_alert: dict[str, Any],
                                                                          page: Page) -> None:
    alert = red_alert["alert"]
    alert_id = alert["alert_id"]
    page.goto(f"{red_alert['alerts_url']}/inbox")

    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("h1")).to_have_text("预警收件箱")
    expect(page.locator('label[for="token"]')).to_have_text("机构令牌")
    page.locator("#token").fill(red_alert["token"])
    page.locator("#sign-in").click()
    expect(page.locator("#signed-in")).to_be_visible()
    expect(page.locator("#state-filter")).to_have_value("active")

    card = page.locator(f'ul#alerts > li.alert[data-alert-id="{alert_id}"]')
    expect(card).to_have_count(1)
    expect(card).to_have_attribute("data-level", "red")
    expect(card).to_have_attribute("data-state", "open")
    expect(card.locator("h3")).to_contain_text("红色(I级)")
    expect(card.locator("h3")).to_contain_text(ENTERPRISE)
    expect(card).to_contain_text(REGION)
    # The reasons the risk service gave, each shown with its criterion and points.
    reasons = alert["reasons"]
    assert reasons, alert
    items = card.locator(".reasons > li")
    expect(items).to_have_count(len(reasons))
    for reason in reasons:
        item = card.locator(f'.reasons > li[data-criterion="{reason["criterion"]}"]')
        expect(item).to_contain_text(f'{reason["criterion"]} (+{reason["points"]})')
        if reason.get("text_zh"):
            expect(item).to_contain_text(reason["text_zh"])
    # Nothing personal reaches the inbox.
    expect(card).not_to_contain_text("13800")

    # Acknowledge: an in-page form asks for the name of the person confirming receipt (no browser dialog).
    dialogs: list[str] = []

    def refuse(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", refuse)
    card.locator("button.ack").click()
    receipt = card.locator("form.receipt-form")
    expect(receipt).to_be_visible()
    expect(receipt.locator('label[for$="-ack-person"]')).to_have_text("确认人姓名")
    receipt.locator('input[name="person"]').fill("王主任")
    receipt.locator("button.confirm-ack").click()
    expect(card).to_have_attribute("data-state", "acknowledged")
    expect(card.locator("button.ack")).to_have_count(0)
    expect(page.locator("#status")).to_contain_text("已确认接收预警")
    assert dialogs == [], dialogs
    acknowledged = get_alert(red_alert)
    assert acknowledged["state"] == "acknowledged"
    assert [a["person"] for a in acknowledged["acknowledgements"]] == ["王主任"], acknowledged

    # English: labels, lang, the card and its reasons follow.
    page.locator("#lang-toggle").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("Alert inbox")
    expect(page).to_have_title("Alert inbox")
    expect(page.locator('label[for="state-filter"]')).to_have_text("State")
    expect(page.locator('#state-filter option[value="active"]')).to_have_text("Unresolved (open + acknowledged)")
    expect(card.locator("h3")).to_contain_text("red (level I)")
    expect(card.locator("h3")).to_contain_text("Acknowledged")
    expect(card.locator("h4")).to_have_text("Reasons")
    expect(card.locator("button.resolve")).to_have_text("Resolve")
    expect(page.locator("#status")).to_contain_text("Alert acknowledged")
    for reason in reasons:
        if reason.get("text_en"):
            expect(card.locator(f'.reasons > li[data-criterion="{reason["criterion"]}"]')).to_contain_text(
                reason["text_en"])

    # Resolve with an outcome and a note.
    card.locator("button.resolve").click()
    resolve_form = card.locator("form.resolve-form")
    expect(resolve_form).to_be_visible()
    resolve_form.locator('select[name="outcome"]').select_option("paid")
    note = "企业已于当日足额支付拖欠工资,职工已返岗。"
    resolve_form.locator('textarea[name="note"]').fill(note)
    resolve_form.locator("button.confirm-resolve").click()

    expect(page.locator("#status")).to_contain_text("Alert resolved")
    expect(card).to_have_count(0)  # gone from the default, unresolved view
    resolved = get_alert(red_alert)
    assert resolved["state"] == "resolved", resolved
    assert resolved["outcome"] == "paid", resolved
    assert resolved["note"] == note, resolved
    assert resolved["resolved_at"], resolved

    # Still there under "resolved", without actions.
    page.locator("#state-filter").select_option("resolved")
    expect(card).to_have_count(1)
    expect(card).to_have_attribute("data-state", "resolved")
    expect(card.locator("button.ack, button.resolve")).to_have_count(0)

    # Back to Chinese.
    page.locator("#lang-toggle").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(card.locator("h3")).to_contain_text("已办结")
    # The token is kept only in this tab's sessionStorage.
    local = page.evaluate("() => Object.entries(localStorage)")
    assert all(red_alert["token"] not in key + value for key, value in local), local


def test_filters_region_names_and_a_new_red_alert_announced_by_the_poll(red_alert: dict[str, Any], page: Page,
                                                                        tmp_path: Any) -> None:
    alert_id = red_alert["alert"]["alert_id"]
    page.goto(f"{red_alert['alerts_url']}/inbox")
    page.locator("#token").fill(red_alert["token"])
    page.locator("#sign-in").click()
    card = page.locator(f'ul#alerts > li.alert[data-alert-id="{alert_id}"]')
    expect(card).to_have_count(1)
    # The region by its names (from /v1/regions), with the code beside them.
    expect(card).to_contain_text("南京市 鼓楼区 (320106)")

    # Level filter: another level hides the red alert, red shows it again.
    page.locator("#level-filter").select_option("orange")
    expect(card).to_have_count(0)
    expect(page.locator("#alerts")).to_contain_text("当前筛选条件下没有预警")
    page.locator("#level-filter").select_option("red")
    expect(card).to_have_count(1)
    # Search by part of the enterprise name.
    page.locator("#q-filter").fill("不存在的企业")
    expect(card).to_have_count(0)
    page.locator("#q-filter").fill("电子科技")
    expect(card).to_have_count(1)
    # Region picker: another city hides it; Nanjing, then Gulou, show it.
    page.locator("#city-filter").select_option("320500")
    expect(card).to_have_count(0)
    page.locator("#city-filter").select_option("320100")
    expect(page.locator("#county-filter")).to_be_enabled()
    page.locator("#county-filter").select_option(REGION)
    expect(card).to_have_count(1)
    # Without an owner: nobody was named for it yet, so it stays.
    page.locator("#no-owner-filter").check()
    expect(card).to_have_count(1)

    # Export CSV with the same filters: fetched with the token and downloaded.
    with page.expect_download() as download_info:
        page.locator("#export-csv").click()
    saved = tmp_path / "alerts.csv"
    download_info.value.save_as(saved)
    exported = saved.read_text(encoding="utf-8-sig")
    assert alert_id in exported, exported[:500]

    # A second red alert arrives; the poll (changed_since) merges it and announces it.
    page.locator("#q-filter").fill("")
    page.locator("#level-filter").select_option("")
    # The list answered for the filters as now set (region and "without owner" kept) before the alert is made.
    expect(page.locator("#alerts")).to_have_attribute("data-filters", f"region_code={REGION}&has_owner=false")
    second_name = "南京某物流服务有限公司"
    report = make_report_body(region_code=REGION, workers_involved=320, collective_action=["road_blocking"],
                              enterprise={"name": second_name})
    accepted = httpx.post(f"{red_alert['intake_url']}/v1/reports", json=report, timeout=10,
                          headers={"Authorization": f"Bearer {red_alert['unit_key']}"})
    assert accepted.status_code == 202, accepted.text
    report_id = accepted.json()["report_id"]

    def listed() -> bool:
        response = httpx.get(f"{red_alert['alerts_url']}/v1/alerts", headers=red_alert["auth"], timeout=10)
        return any(report_id in item.get("report_ids", []) and item["level"] == "red"
                   for item in response.json()["items"])

    wait_for(listed, what="the second red alert listed")
    page.evaluate("() => document.dispatchEvent(new Event('visibilitychange'))")
    expect(page.locator("#new-alert")).to_contain_text(f"新的红色预警:{second_name}")
    expect(page.locator("ul#alerts > li.alert")).to_have_count(2)
    expect(card).to_have_count(1)
    page.screenshot(path=str(tmp_path / "inbox-filters.png"), full_page=True)


def test_detail_panel_shows_the_alert_and_names_an_owner(red_alert: dict[str, Any], page: Page) -> None:
    alert_id = red_alert["alert"]["alert_id"]
    page.goto(f"{red_alert['alerts_url']}/inbox")
    page.locator("#token").fill(red_alert["token"])
    page.locator("#sign-in").click()
    card = page.locator(f'ul#alerts > li.alert[data-alert-id="{alert_id}"]')
    card.locator("button.details").click()
    detail = page.locator("#detail")
    expect(detail).to_be_visible()
    expect(page).to_have_url(f"{red_alert['alerts_url']}/inbox#/alerts/{alert_id}")
    expect(detail.locator(".reports")).to_contain_text(ENTERPRISE)
    expect(detail.locator(".reports")).to_contain_text("涉及职工 320 人")
    expect(detail.locator(".notified")).to_contain_text("南京市鼓楼区总工会")
    expect(detail.locator(".owner")).to_have_text("尚未指定")
    detail.locator("#owner-person").fill("李书记")
    detail.locator("#owner-title").fill("区总工会副主席")
    detail.locator(".owner-form button[type=submit]").click()
    expect(detail.locator(".owner")).to_have_text("李书记(区总工会副主席)")
    assert get_alert(red_alert)["owner"]["person"] == "李书记"


def test_the_bodys_language_sets_the_page_language(red_alert: dict[str, Any], receiver: WebhookReceiver,
                                                   page: Page) -> None:
    created = httpx.post(f"{red_alert['alerts_url']}/v1/bodies", headers=ADMIN, timeout=10, json={
        "name": "Gulou labour inspection", "kind": "labour_inspection", "level": "county", "region_code": REGION,
        "language": "en",
        "channels": [{"type": "webhook", "url": receiver.url, "secret": "browser-webhook-secret-9876543210"}]})
    assert created.status_code == 201, created.text
    page.goto(f"{red_alert['alerts_url']}/inbox")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    page.locator("#token").fill(created.json()["token"])
    page.locator("#sign-in").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("Alert inbox")
