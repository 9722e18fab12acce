"""The unit's report form (GET / on intake) in a real browser against a real intake process."""

from __future__ import annotations

import random
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Page, expect

from services.intake.validation import CREDIT_CODE_ALPHABET, credit_code_check_character, credit_code_is_valid
from tests.browser.conftest import DESKTOP, MOBILE
from tests.conftest import ADMIN_TOKEN, StartService
from tests.factories import credit_code, make_report_body

pytestmark = pytest.mark.browser

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SHANGHAI = ZoneInfo("Asia/Shanghai")


def register_unit(intake_url: str, *, name: str = "玄武区某街道工会", region_code: str = "320102") -> str:
    response = httpx.post(f"{intake_url}/v1/units", headers=ADMIN, timeout=10,
                          json={"name": name, "region_code": region_code})
    assert response.status_code == 201, response.text
    return str(response.json()["api_key"])


def report_count(intake_url: str, api_key: str) -> int:
    response = httpx.get(f"{intake_url}/v1/reports", params={"limit": 200},
                         headers={"Authorization": f"Bearer {api_key}"}, timeout=10)
    assert response.status_code == 200, response.text
    return len(response.json()["items"])


@pytest.fixture
def intake(start_service: StartService, isolated_env: dict[str, str]) -> Any:
    return start_service("intake", **isolated_env)


def sign_in(page: Page, url: str, api_key: str) -> None:
    page.goto(f"{url}/")
    page.locator("#api-key").fill(api_key)
    page.locator("#sign-in").click()
    expect(page.locator("#signed-in")).to_be_visible()
    expect(page.locator("#sign-in-form")).to_be_hidden()


def fill_arrears_report(page: Page, *, code: str, occurred_local: str, workers: int = 38) -> None:
    form = page.locator("#report-form")
    form.locator('[name="kind"]').select_option("arrears")
    form.locator('[name="occurred_at"]').fill(occurred_local)
    form.locator("#f-region-city").select_option("320100")
    form.locator('[name="region_code"]').select_option("320102")
    form.locator('[name="enterprise.name"]').fill("南京某劳务派遣有限公司")
    form.locator('[name="enterprise.credit_code"]').fill(code)
    form.locator('[name="enterprise.industry"]').select_option("E")
    form.locator('[name="enterprise.ownership"]').select_option("private")
    form.locator('[name="workers_involved"]').fill(str(workers))
    form.locator('[name="migrant_workers_involved"]').fill("30")
    form.locator('[name="collective_action"][value="gathering"]').check()
    form.locator('[name="petition"]').select_option("local")
    form.locator('[name="online_exposure"]').select_option("posted")
    form.locator('[name="summary"]').fill("项目完工后拖欠 38 名职工三个月工资,职工在项目部聚集。")
    form.locator('[name="arrears.amount_owed_cny"]').fill("256000")
    form.locator('[name="arrears.months_overdue"]').fill("3")
    form.locator('[name="contact.name"]').fill("浏览器联系人")
    form.locator('[name="contact.phone"]').fill("13800001234")


def local_occurred_at() -> tuple[str, datetime]:
    """A datetime-local value three days ago, in the browser's zone (Asia/Shanghai), and the instant it means."""
    moment = (datetime.now(SHANGHAI) - timedelta(days=3)).replace(second=0, microsecond=0)
    return moment.strftime("%Y-%m-%dT%H:%M"), moment


@pytest.mark.parametrize("viewport", [MOBILE, DESKTOP], ids=["mobile-360x800", "desktop"])
def test_unit_signs_in_switches_language_and_files_an_arrears_report(intake: Any, page: Page) -> None:
    api_key = register_unit(intake.url)
    unit_auth = {"Authorization": f"Bearer {api_key}"}

    page.goto(f"{intake.url}/")
    # Chinese by default.
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("h1")).to_have_text("劳动关系风险上报")
    expect(page.locator('label[for="api-key"]')).to_have_text("单位 API 密钥")
    expect(page.locator("#submit")).to_have_text("提交上报")

    # English and back.
    page.locator("#lang-toggle").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("h1")).to_have_text("Labour-relations risk report")
    expect(page.locator('label[for="api-key"]')).to_have_text("Unit API key")
    expect(page.locator('label[for="f-enterprise-credit_code"]')).to_have_text(
        "Unified social credit code (18 characters)")
    expect(page.locator("#submit")).to_have_text("Submit report")
    expect(page).to_have_title("Labour-relations risk report")
    page.locator("#lang-toggle").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator('label[for="api-key"]')).to_have_text("单位 API 密钥")

    sign_in(page, intake.url, api_key)
    expect(page.locator("#reports tbody")).to_contain_text("暂无上报记录")

    code = credit_code()
    occurred_local, occurred = local_occurred_at()
    fill_arrears_report(page, code=code, occurred_local=occurred_local)
    page.locator("#submit").click()

    result = page.locator("#result")
    expect(result).to_have_attribute("data-report-id", re.compile(r"\S+"))
    report_id = result.get_attribute("data-report-id")
    assert report_id
    expect(result).to_contain_text(report_id)
    expect(result).to_contain_text("已受理")
    # The receipt: a short reference number, shown and copyable.
    reference = "LR-" + report_id[:8].upper()
    expect(page.locator("#reference")).to_have_text(reference)
    page.locator("#copy-reference").click()
    expect(page.locator("#copy-reference")).to_have_text("已复制")
    expect(page.locator("#errors")).to_be_empty()
    # The form is reset after a successful submission.
    expect(page.locator('[name="enterprise.credit_code"]')).to_have_value("")

    response = httpx.get(f"{intake.url}/v1/reports/{report_id}", headers=unit_auth, timeout=10)
    assert response.status_code == 200, response.text
    view = response.json()
    assert view["status"] in {"accepted", "assessed"}
    report = view["report"]
    assert report["kind"] == "arrears"
    assert report["enterprise"]["credit_code"] == code
    assert report["enterprise"]["name"] == "南京某劳务派遣有限公司"
    assert report["enterprise"]["industry"] == "E"
    assert report["workers_involved"] == 38
    assert report["migrant_workers_involved"] == 30
    assert report["region_code"] == "320102"
    assert report["collective_action"] == ["gathering"]
    assert report["petition"] == "local"
    assert report["online_exposure"] == "posted"
    assert report["arrears"]["amount_owed_cny"] == 256000
    assert report["arrears"]["months_overdue"] == 3
    assert datetime.fromisoformat(report["occurred_at"].replace("Z", "+00:00")) == occurred
    assert view["contact"] == {"name": "浏览器联系人", "phone": "13800001234"}

    row = page.locator(f'table#reports tbody tr[data-report-id="{report_id}"]')
    expect(row).to_have_count(1)
    expect(row).to_have_attribute("data-status", re.compile(r"^(accepted|assessed)$"))
    expect(row).to_contain_text("南京某劳务派遣有限公司")
    expect(row).to_contain_text("欠薪")
    expect(row.locator(".reference")).to_have_text(reference)
    page.locator("#refresh").click()
    expect(page.locator("table#reports tbody tr[data-report-id]")).to_have_count(1)

    # The key is kept nowhere in the browser: the page holds an HttpOnly session cookie that scripts cannot read.
    for storage in ("localStorage", "sessionStorage"):
        stored = page.evaluate(f"() => Object.entries({storage})")
        assert all(api_key not in key and api_key not in value for key, value in stored), stored
    assert "intake_session" not in page.evaluate("() => document.cookie")
    cookies = {cookie["name"]: cookie for cookie in page.context.cookies()}
    assert cookies["intake_session"]["httpOnly"] is True
    assert cookies["intake_session"]["sameSite"] == "Strict"
    assert api_key not in cookies["intake_session"]["value"]
    expect(page.locator("#api-key")).to_have_value("")


@pytest.mark.parametrize("viewport", [MOBILE], ids=["mobile-360x800"])
def test_a_wrong_credit_code_check_character_is_shown_inline_and_files_nothing(intake: Any, page: Page) -> None:
    api_key = register_unit(intake.url)
    before = report_count(intake.url, api_key)
    sign_in(page, intake.url, api_key)

    valid = credit_code()
    wrong = valid[:17] + next(c for c in CREDIT_CODE_ALPHABET if c != valid[17])
    occurred_local, _ = local_occurred_at()
    fill_arrears_report(page, code=wrong, occurred_local=occurred_local)
    posts: list[str] = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)
    page.locator("#submit").click()

    field_error = page.locator('[data-field="enterprise.credit_code"] .field-error')
    expect(field_error).to_have_count(1)
    expect(field_error).to_be_visible()
    expect(field_error).to_contain_text("校验位")
    expect(page.locator('[name="enterprise.credit_code"]')).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#errors")).to_contain_text("enterprise.credit_code")
    expect(page.locator("#result")).to_be_empty()
    expect(page.locator("#result")).not_to_have_attribute("data-report-id", re.compile(".*"))
    # The other fields are kept, so the unit only corrects the code.
    expect(page.locator('[name="enterprise.credit_code"]')).to_have_value(wrong)
    expect(page.locator('[name="enterprise.name"]')).to_have_value("南京某劳务派遣有限公司")

    assert report_count(intake.url, api_key) == before
    expect(page.locator("table#reports tbody tr[data-report-id]")).to_have_count(0)
    # The check character was checked in the page: nothing was sent.
    assert not [url for url in posts if url.endswith("/v1/reports")], posts

    # Correcting the check character files the report and clears the inline error.
    page.locator('[name="enterprise.credit_code"]').fill(valid)
    page.locator("#submit").click()
    expect(page.locator("#result")).to_have_attribute("data-report-id", re.compile(r"\S+"))
    expect(field_error).to_have_count(0)
    assert report_count(intake.url, api_key) == before + 1


def test_a_unit_signs_in_once_stays_signed_in_on_reload_and_signs_out(
    intake: Any, page: Page, tmp_path: Path
) -> None:
    api_key = register_unit(intake.url, name="昆山市某镇总工会", region_code="320583")

    sign_in(page, intake.url, api_key)
    expect(page.locator("#unit-info")).to_contain_text("昆山市某镇总工会")
    expect(page.locator("#unit-info")).to_contain_text("苏州市 昆山市")

    # A reload (or a new visit within the session's lifetime) needs no key.
    page.reload()
    expect(page.locator("#signed-in")).to_be_visible()
    expect(page.locator("#sign-in-form")).to_be_hidden()
    expect(page.locator("#unit-info")).to_contain_text("昆山市某镇总工会")
    # The region pickers start on the unit's own county.
    expect(page.locator("#f-region-city")).to_have_value("320500")
    expect(page.locator("#f-region-city option:checked")).to_have_text("苏州市")
    expect(page.locator('[name="region_code"]')).to_have_value("320583")
    expect(page.locator('[name="region_code"] option:checked')).to_have_text("昆山市")
    expect(page.locator("#reports tbody")).to_contain_text("暂无上报记录")
    page.screenshot(path=str(tmp_path / "form-signed-in.png"), full_page=True)

    # Another city lists its own counties.
    page.locator("#f-region-city").select_option("320100")
    expect(page.locator('[name="region_code"] option[value="320102"]')).to_have_text("玄武区")
    expect(page.locator('[name="region_code"] option[value="320583"]')).to_have_count(0)

    cookie = next(c for c in page.context.cookies() if c["name"] == "intake_session")["value"]
    page.locator("#sign-out").click()
    expect(page.locator("#sign-in-form")).to_be_visible()
    expect(page.locator("#auth-status")).to_have_text("已退出登录。")
    page.reload()
    expect(page.locator("#sign-in-form")).to_be_visible()
    expect(page.locator("#reports tbody")).to_contain_text("请先使用单位 API 密钥登录")
    # The session is over on the server too: its cookie, replayed, is refused.
    replayed = httpx.get(f"{intake.url}/v1/me", headers={"Cookie": f"intake_session={cookie}"}, timeout=10)
    assert replayed.status_code == 401


def test_a_wrong_key_is_told_and_nothing_is_signed_in(intake: Any, page: Page) -> None:
    page.goto(f"{intake.url}/")
    page.locator("#api-key").fill("unit_not-a-real-key")
    page.locator("#sign-in").click()

    expect(page.locator("#auth-status")).to_have_text("登录失败: 密钥无效,或该单位已停用。")
    expect(page.locator("#sign-in-form")).to_be_visible()
    assert not [c for c in page.context.cookies() if c["name"] == "intake_session"]


def test_other_client_side_checks_name_their_fields_before_sending(intake: Any, page: Page) -> None:
    api_key = register_unit(intake.url)
    sign_in(page, intake.url, api_key)
    occurred_local, _ = local_occurred_at()
    fill_arrears_report(page, code=credit_code(), occurred_local=occurred_local, workers=10)
    form = page.locator("#report-form")
    form.locator('[name="migrant_workers_involved"]').fill("12")        # more than the workers involved
    form.locator('[name="arrears.months_overdue"]').fill("121")          # above 120
    future = (datetime.now(SHANGHAI) + timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    form.locator('[name="occurred_at"]').fill(future)
    form.locator('[name="contact.phone"]').fill("")                      # a name without a phone
    posts: list[str] = []
    page.on("request", lambda request: posts.append(request.url) if request.method == "POST" else None)

    page.locator("#submit").click()

    def error_of(field: str) -> Any:
        return page.locator(f'[data-field="{field}"] .field-error')

    expect(error_of("migrant_workers_involved")).to_have_text("农民工人数不能超过涉及职工人数")
    expect(error_of("arrears.months_overdue")).to_have_text("应在 0 到 120 之间")
    expect(error_of("occurred_at")).to_have_text("发生时间不能晚于当前时间")
    expect(error_of("contact.phone")).to_have_text("填写联系人时,姓名和电话都要填写")
    expect(page.locator('[data-field="enterprise.credit_code"] .field-error')).to_have_count(0)
    # The same errors in English after the toggle.
    page.locator("#lang-toggle").click()
    expect(error_of("arrears.months_overdue")).to_have_text("Must be between 0 and 120")
    expect(error_of("occurred_at")).to_have_text("Must not be in the future")
    assert not [url for url in posts if url.endswith("/v1/reports")], posts


def test_the_servers_field_errors_are_shown_beside_the_fields(intake: Any, page: Page) -> None:
    api_key = register_unit(intake.url)
    sign_in(page, intake.url, api_key)
    occurred_local, _ = local_occurred_at()
    fill_arrears_report(page, code=credit_code(), occurred_local=occurred_local)
    # A rule the page does not know (or a stale page): the server's 422 is placed like the page's own errors.
    page.route("**/v1/reports", lambda route: route.fulfill(
        status=422, content_type="application/json",
        body='{"error": {"code": "validation_error", "message": "请求内容有误 / The request is invalid", '
             '"details": [{"field": "enterprise.name", "reason": "企业名称有误 / the name is wrong", '
             '"type": "value_error"}]}}',
    ) if route.request.method == "POST" else route.continue_())

    page.locator("#submit").click()

    expect(page.locator('[data-field="enterprise.name"] .field-error')).to_have_text("企业名称有误 / the name is wrong")
    expect(page.locator('[name="enterprise.name"]')).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#result")).to_be_empty()


def _create_round(intake_url: str, region_code: str, name: str) -> str:
    now = datetime.now(SHANGHAI)
    response = httpx.post(f"{intake_url}/v1/screening-rounds", headers=ADMIN, timeout=10, json={
        "name": name, "region_code": region_code, "opens_at": (now - timedelta(minutes=5)).isoformat(),
        "due_at": (now + timedelta(days=7)).isoformat(),
    })
    assert response.status_code == 201, response.text
    return str(response.json()["round_id"])


def _my_return(intake_url: str, api_key: str, round_id: str) -> Any:
    response = httpx.get(f"{intake_url}/v1/screening-rounds/{round_id}", timeout=10,
                         headers={"Authorization": f"Bearer {api_key}"})
    assert response.status_code == 200, response.text
    return response.json()["my_return"]


@pytest.mark.parametrize("viewport", [MOBILE], ids=["mobile-360x800"])
def test_the_unit_answers_an_open_round_in_one_click_or_by_linking_reports(
    intake: Any, page: Page, tmp_path: Path
) -> None:
    api_key = register_unit(intake.url)
    first = _create_round(intake.url, "320100", "2026年第四季度职工队伍稳定风险排查")
    second = _create_round(intake.url, "320102", "玄武区春节前欠薪专项排查")
    filed = httpx.post(f"{intake.url}/v1/reports", json=make_report_body(region_code="320102"), timeout=10,
                       headers={"Authorization": f"Bearer {api_key}"})
    assert filed.status_code == 202, filed.text
    report_id = filed.json()["report_id"]

    sign_in(page, intake.url, api_key)
    one = page.locator(f'.round[data-round-id="{first}"]')
    expect(one.locator("h3")).to_have_text("2026年第四季度职工队伍稳定风险排查")
    expect(one).to_contain_text("截止时间")
    expect(one).to_contain_text("南京市")
    expect(one.locator(".my-status")).to_have_text("本单位尚未回复")

    # One click: 本期无风险隐患.
    one.locator("button.no-risk").click()
    expect(one.locator(".my-status")).to_have_text("已回复:本期无风险隐患")
    expect(one.locator(".round-message")).to_have_text("回复已提交。")
    expect(one.locator(".round-message")).to_have_attribute("data-tone", "ok")
    assert _my_return(intake.url, api_key, first)["status"] == "no_risk"

    # Or by ticking the reports the unit filed.
    two = page.locator(f'.round[data-round-id="{second}"]')
    two.locator("button.link").click()
    two.locator("button.send-linked").click()
    expect(two.locator(".round-message")).to_have_text("请至少勾选一份报告。")
    two.locator(f'input[value="{report_id}"]').check()
    # A refresh (the list's button, or the automatic one) keeps the box open and the tick.
    page.evaluate("(id) => document.querySelector(`.round[data-round-id='${id}']`).dataset.old = '1'", second)
    page.locator("#refresh").click()
    expect(page.locator(f'.round[data-round-id="{second}"][data-old]')).to_have_count(0)  # drawn anew
    expect(two.locator(f'input[value="{report_id}"]')).to_be_checked()
    page.screenshot(path=str(tmp_path / "form-rounds.png"), full_page=True)
    two.locator("button.send-linked").click()
    expect(two.locator(".my-status")).to_have_text("已回复:发现风险,已关联 1 份报告")
    answer = _my_return(intake.url, api_key, second)
    assert answer["status"] == "risks_reported"
    assert answer["report_ids"] == [report_id]

    # The status survives a reload (it comes from the server), in English too.
    page.reload()
    page.locator("#lang-toggle").click()
    expect(page.locator(f'.round[data-round-id="{first}"] .my-status')).to_have_text(
        "Answered: no risk found this round")
    expect(page.locator(f'.round[data-round-id="{second}"] .my-status')).to_have_text("Answered: risks found")


def test_a_refused_round_answer_is_shown_in_words(intake: Any, page: Page) -> None:
    api_key = register_unit(intake.url)
    round_id = _create_round(intake.url, "320102", "玄武区第四季度排查")
    sign_in(page, intake.url, api_key)
    item = page.locator(f'.round[data-round-id="{round_id}"]')
    expect(item).to_be_visible()
    # The round closes while the page is open: the server answers 409 round_closed.
    page.route(f"**/v1/screening-rounds/{round_id}/returns", lambda route: route.fulfill(
        status=409, content_type="application/json",
        body='{"error": {"code": "round_closed", "message": "本轮排查已截止 / closed", "details": []}}'))

    item.locator("button.no-risk").click()

    expect(item.locator(".round-message")).to_have_text("回复未成功: 本轮排查已截止,不能再提交或修改回复。")
    expect(item.locator(".my-status")).to_have_text("本单位尚未回复")
    page.locator("#lang-toggle").click()
    expect(item.locator(".round-message")).to_contain_text("This round is closed")


def test_the_pages_credit_code_check_is_the_servers(intake: Any, page: Page) -> None:
    rng = random.Random(20261127)
    bodies = ["".join(rng.choice(CREDIT_CODE_ALPHABET) for _ in range(17)) for _ in range(300)]
    page.goto(f"{intake.url}/")
    expect(page.locator("body")).to_have_attribute("data-ready", "true")

    in_page = page.evaluate("(bodies) => bodies.map(creditCodeCheckCharacter)", bodies)

    assert in_page == [credit_code_check_character(body) for body in bodies]
    # And the whole verdict on codes that are wrong in each way the server refuses.
    valid = credit_code()
    cases = [valid, valid[:17] + next(c for c in CREDIT_CODE_ALPHABET if c != valid[17]), valid[:17],
             valid[:16] + "I" + valid[17], valid.lower()]
    verdicts = page.evaluate("(codes) => codes.map((code) => creditCodeProblem(code) === null)", cases)
    assert verdicts == [credit_code_is_valid(code) for code in cases]
