"""The unit's report form (GET / on intake) in a real browser against a real intake process."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Page, expect

from services.intake.validation import CREDIT_CODE_ALPHABET
from tests.browser.conftest import DESKTOP, MOBILE
from tests.conftest import ADMIN_TOKEN, StartService
from tests.factories import credit_code

pytestmark = pytest.mark.browser

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SHANGHAI = ZoneInfo("Asia/Shanghai")


def register_unit(intake_url: str) -> str:
    response = httpx.post(f"{intake_url}/v1/units", headers=ADMIN, timeout=10,
                          json={"name": "玄武区某街道工会", "region_code": "320102"})
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
    form.locator('[name="region_code"]').fill("320102")
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
    page.locator("#refresh").click()
    expect(page.locator("table#reports tbody tr[data-report-id]")).to_have_count(1)

    # The key lives only in this tab's sessionStorage, never in localStorage.
    local = page.evaluate("() => Object.entries(localStorage)")
    assert all(api_key not in key and api_key not in value for key, value in local), local
    assert page.evaluate("() => sessionStorage.getItem('intake.apiKey')") == api_key
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

    # Correcting the check character files the report and clears the inline error.
    page.locator('[name="enterprise.credit_code"]').fill(valid)
    page.locator("#submit").click()
    expect(page.locator("#result")).to_have_attribute("data-report-id", re.compile(r"\S+"))
    expect(field_error).to_have_count(0)
    assert report_count(intake.url, api_key) == before + 1
