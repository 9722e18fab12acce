"""The inbox's two other tabs in a real browser, fed by the real pipeline: the watch list (关注名单: blue reports
by enterprise, `GET /v1/watchlist`, paged with its cursor) and screening coverage (排查覆盖: rounds opened and
answered on intake, heard on `screening.v1`, `GET /v1/screening/coverage`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from tests.browser.test_inbox import ADMIN, wait_for
from tests.conftest import ADMIN_TOKEN, StartService
from tests.factories import credit_code, make_report_body
from tests.support.receivers import WebhookReceiver, webhook_receiver

pytestmark = pytest.mark.browser

REGION = "320106"  # 鼓楼区, Nanjing
OTHER = "320102"  # 玄武区, Nanjing: another county
SHANGHAI = ZoneInfo("Asia/Shanghai")
BLUE_DISPUTE = {"kind": "dispute", "workers_involved": 45}
BLUE_ARREARS = {"kind": "arrears", "workers_involved": 12, "arrears": {"amount_owed_cny": 50000, "months_overdue": 1}}


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with webhook_receiver() as server:
        yield server


def register(alerts_url: str, receiver: WebhookReceiver, name: str, kind: str, region: str = REGION) -> str:
    created = httpx.post(f"{alerts_url}/v1/bodies", headers=ADMIN, timeout=10, json={
        "name": name, "kind": kind, "level": "county", "region_code": region,
        "channels": [{"type": "webhook", "url": receiver.url, "secret": "browser-webhook-secret-0123456789"}]})
    assert created.status_code == 201, created.text
    return str(created.json()["token"])


def unit(intake_url: str, name: str, region: str = REGION) -> str:
    created = httpx.post(f"{intake_url}/v1/units", headers=ADMIN, timeout=10,
                         json={"name": name, "region_code": region})
    assert created.status_code == 201, created.text
    return str(created.json()["api_key"])


def submit(intake_url: str, key: str, report: dict[str, Any]) -> str:
    accepted = httpx.post(f"{intake_url}/v1/reports", json=report, timeout=10,
                          headers={"Authorization": f"Bearer {key}"})
    assert accepted.status_code == 202, accepted.text
    return str(accepted.json()["report_id"])


def days_ago(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).isoformat()


@pytest.fixture
def world(start_service: StartService, receiver: WebhookReceiver, isolated_env: dict[str, str]) -> dict[str, Any]:
    """Bodies of Gulou (a union, a mediation centre), three units there and one in Xuanwu; blue reports of three
    Gulou enterprises and one Xuanwu enterprise; a screening round over Gulou that two of the three units answered."""
    intake = start_service("intake", **isolated_env)
    start_service("risk", **isolated_env)
    alerts = start_service("alerts", **isolated_env)
    union = register(alerts.url, receiver, "南京市鼓楼区总工会", "union")
    mediation = register(alerts.url, receiver, "鼓楼区劳动争议调解中心", "mediation_centre")
    first = unit(intake.url, "鼓楼区湖南路街道工会")
    second = unit(intake.url, "鼓楼区宁海路街道工会")
    unit(intake.url, "鼓楼区华侨路街道工会")  # answers nothing
    elsewhere = unit(intake.url, "玄武区某街道工会", OTHER)

    watched = {"twice": credit_code(), "once": credit_code(), "oldest": credit_code()}
    reports = [
        submit(intake.url, first, make_report_body(
            occurred_at=days_ago(20), region_code=REGION,
            enterprise={"name": "南京某餐饮管理有限公司", "credit_code": watched["twice"]}, **BLUE_DISPUTE)),
        submit(intake.url, first, make_report_body(
            occurred_at=days_ago(2), region_code=REGION,
            enterprise={"name": "南京某餐饮管理有限公司", "credit_code": watched["twice"]}, **BLUE_ARREARS)),
        submit(intake.url, first, make_report_body(
            occurred_at=days_ago(5), region_code=REGION,
            enterprise={"name": "南京某物业服务有限公司", "credit_code": watched["once"]}, **BLUE_DISPUTE)),
        submit(intake.url, first, make_report_body(
            occurred_at=days_ago(40), region_code=REGION,
            enterprise={"name": "南京某快递服务有限公司", "credit_code": watched["oldest"]}, **BLUE_DISPUTE)),
    ]
    submit(intake.url, elsewhere, make_report_body(
        occurred_at=days_ago(1), region_code=OTHER, enterprise={"name": "玄武某科技有限公司"}, **BLUE_DISPUTE))

    def all_listed() -> bool:
        response = httpx.get(f"{alerts.url}/v1/watchlist", headers=ADMIN, timeout=10)
        assert response.status_code == 200, response.text
        return len(response.json()["items"]) == 4 and sum(i["reports"] for i in response.json()["items"]) == 5

    wait_for(all_listed, what="the five blue reports on the watch list")

    now = datetime.now(UTC)
    created = httpx.post(f"{intake.url}/v1/screening-rounds", headers=ADMIN, timeout=10, json={
        "name": "2026年第四季度职工队伍稳定风险隐患排查", "region_code": REGION,
        "opens_at": (now - timedelta(hours=1)).isoformat(), "due_at": (now + timedelta(days=7)).isoformat()})
    assert created.status_code == 201, created.text
    round_id = created.json()["round_id"]
    for key, answer in ((first, {"status": "risks_reported", "report_ids": reports[:1]}),
                        (second, {"status": "no_risk"})):
        returned = httpx.post(f"{intake.url}/v1/screening-rounds/{round_id}/returns", json=answer, timeout=10,
                              headers={"Authorization": f"Bearer {key}"})
        assert returned.status_code == 201, returned.text

    def answered() -> bool:
        response = httpx.get(f"{alerts.url}/v1/screening/coverage", headers=ADMIN, timeout=10)
        assert response.status_code == 200, response.text
        return any(r["round_id"] == round_id and r["answered"] == 2 for r in response.json()["rounds"])

    wait_for(answered, what="both answers counted by the alerts service")
    return {"alerts_url": alerts.url, "union": union, "mediation": mediation, "watched": watched,
            "round_id": round_id}


def watch_items(world: dict[str, Any], token: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{world['alerts_url']}/v1/watchlist", headers={"Authorization": f"Bearer {token}"},
                         timeout=10)
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def sign_in(page: Page, world: dict[str, Any], token: str) -> None:
    page.goto(f"{world['alerts_url']}/inbox")
    page.locator("#token").fill(token)
    page.locator("#sign-in").click()
    expect(page.locator("#signed-in")).to_be_visible()


def limit_watchlist_pages(page: Page, limit: int) -> list[str]:
    """Asks the watch list in pages of `limit` (the page asks for 50), so that its cursor is followed; returns the
    URLs asked."""
    asked: list[str] = []

    def rewrite(route: Route) -> None:
        parts = urlsplit(route.request.url)
        query = dict(parse_qsl(parts.query))
        query["limit"] = str(limit)
        url = urlunsplit(parts._replace(query=urlencode(query)))
        asked.append(url)
        route.continue_(url=url)

    page.route("**/v1/watchlist?*", rewrite)
    return asked


def test_the_watch_list_tab_pages_with_its_cursor(world: dict[str, Any], page: Page, tmp_path: Any) -> None:
    asked = limit_watchlist_pages(page, 2)
    sign_in(page, world, world["union"])
    tab = page.locator("#tab-watch")
    expect(tab).to_have_text("关注名单")
    expect(tab).to_have_attribute("aria-selected", "false")
    tab.click()
    expect(tab).to_have_attribute("aria-selected", "true")
    expect(page.locator("#panel-watch")).to_be_visible()
    expect(page.locator("#panel-alerts")).to_be_hidden()

    rows = page.locator("#watch-rows > tr")
    expect(rows).to_have_count(2)
    more = page.locator("#watch-more")
    expect(more).to_be_visible()
    expect(more).to_have_text("更多")
    # The most recent first; the enterprise seen twice with both kinds in words, its region by name only.
    twice = rows.nth(0)
    expect(twice).to_have_attribute("data-credit-code", world["watched"]["twice"])
    expect(twice.locator(".enterprise")).to_have_text("南京某餐饮管理有限公司")
    expect(twice.locator(".credit-code")).to_have_text(world["watched"]["twice"])
    expect(twice.locator(".region")).to_have_text("南京市 鼓楼区")
    expect(twice.locator(".count")).to_have_text("2")
    expect(twice.locator(".kinds")).to_contain_text("欠薪")
    expect(twice.locator(".kinds")).to_contain_text("劳动争议")
    (item,) = [i for i in watch_items(world, world["union"]) if i["credit_code"] == world["watched"]["twice"]]
    latest = datetime.fromisoformat(item["latest_occurred_at"]).astimezone(SHANGHAI).date()
    expect(twice.locator(".latest")).to_have_text(f"{latest.year}/{latest.month}/{latest.day}")  # zh-CN, a day
    expect(twice.locator(".score")).to_have_text(str(item["latest_score"]))  # the latest blue report's score
    expect(rows.nth(1)).to_have_attribute("data-credit-code", world["watched"]["once"])
    expect(page.locator("#watch-summary")).to_contain_text("南京市 鼓楼区")

    more.click()
    expect(rows).to_have_count(3)
    expect(rows.nth(2)).to_have_attribute("data-credit-code", world["watched"]["oldest"])
    expect(more).to_be_hidden()
    # The Xuanwu enterprise is not the Gulou union's to see; the second page was asked with the first's cursor.
    expect(page.locator("#watch-rows")).not_to_contain_text("玄武某科技有限公司")
    assert len(asked) == 2, asked
    assert "cursor=" not in asked[0], asked
    assert "cursor=" in asked[1], asked

    page.locator("#lang-toggle").click()
    expect(tab).to_have_text("Watch list")
    expect(more).to_be_hidden()
    expect(rows.nth(0).locator(".region")).to_have_text("Nanjing Gulou District")
    expect(rows.nth(0).locator(".kinds")).to_contain_text("Wage arrears")
    expect(page.locator("#panel-watch th").first).to_have_text("Enterprise")
    page.screenshot(path=str(tmp_path / "inbox-watchlist.png"), full_page=True)


def test_the_admin_sees_the_whole_watch_list_and_the_mediation_centre_has_no_coverage_tab(
    world: dict[str, Any], page: Page,
) -> None:
    sign_in(page, world, ADMIN_TOKEN)
    page.locator("#tab-watch").click()
    expect(page.locator("#watch-rows > tr")).to_have_count(4)
    expect(page.locator("#watch-rows")).to_contain_text("玄武某科技有限公司")
    expect(page.locator("#watch-summary")).to_contain_text("全部地区")
    expect(page.locator("#watch-more")).to_be_hidden()
    expect(page.locator("#tab-coverage")).to_be_visible()

    page.locator("#sign-out").click()
    sign_in(page, world, world["mediation"])
    expect(page.locator("#tab-coverage")).to_be_hidden()
    expect(page.locator("#tab-watch")).to_be_visible()
    expect(page.locator("#tab-alerts")).to_have_attribute("aria-selected", "true")


def test_the_screening_coverage_tab_shows_each_round_and_who_has_not_answered(world: dict[str, Any], page: Page,
                                                                              tmp_path: Any) -> None:
    sign_in(page, world, world["union"])
    tab = page.locator("#tab-coverage")
    expect(tab).to_have_text("排查覆盖")
    tab.focus()
    tab.press("ArrowLeft")  # the arrow keys move between the tabs: from coverage to the watch list
    expect(page.locator("#tab-watch")).to_be_focused()
    page.locator("#tab-watch").press("ArrowRight")
    expect(tab).to_have_attribute("aria-selected", "true")
    panel = page.locator("#panel-coverage")
    expect(panel).to_be_visible()

    round_ = panel.locator(f'#rounds > li.round[data-round-id="{world["round_id"]}"]')
    expect(round_).to_have_count(1)
    expect(round_.locator(".round-name")).to_have_text("2026年第四季度职工队伍稳定风险隐患排查")
    expect(round_.locator("h3")).to_contain_text("进行中")
    expect(round_.locator(".answered")).to_have_text("2 / 3")
    expect(round_.locator(".no-risk")).to_have_text("1")
    expect(round_.locator(".risks")).to_have_text("1")
    expect(round_.locator(".meta")).to_contain_text("截止时间")
    expect(round_.locator(f'.counties li[data-county="{REGION}"]')).to_have_text("南京市 鼓楼区:2 / 3")
    expect(page.locator("#coverage-summary")).to_contain_text("共 1 期排查")
    missing = round_.locator(".missing > li")
    expect(missing).to_have_count(1)
    expect(missing).to_have_text("鼓楼区华侨路街道工会(南京市 鼓楼区)")

    page.locator("#lang-toggle").click()
    expect(tab).to_have_text("Screening coverage")
    expect(round_.locator("h3")).to_contain_text("Open")
    expect(missing).to_have_text("鼓楼区华侨路街道工会 (Nanjing Gulou District)")
    expect(round_.locator("h4").last).to_have_text("Units that have not answered")
    expect(page.locator("#coverage-summary")).to_contain_text("1 round, updated")
    page.screenshot(path=str(tmp_path / "inbox-coverage.png"), full_page=True)

    # The tab has an address: a link (or a reload) opens it again.
    expect(page).to_have_url(f"{world['alerts_url']}/inbox#/coverage")
    page.reload()
    expect(tab).to_have_attribute("aria-selected", "true")
    expect(round_.locator(".answered")).to_have_text("2 / 3")
    page.locator("#tab-alerts").click()
    expect(page).to_have_url(f"{world['alerts_url']}/inbox")
