"""Notification texts: zh-CN first then English, the facts a body needs, and never personal data."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from services.alerts.messages import email_text, markdown, title, wecom_markdown

pytestmark = pytest.mark.unit

CONTACT_VALUES = ("张三", "13800138000", "zhangsan@example.com", "320102199001011234")


def make_payload(event: str = "alert.opened", level: str = "red") -> dict[str, Any]:
    return {
        "event": event,
        "alert": {
            "alert_id": "al_01HZX4K",
            "credit_code": "91320102MA1W2B3C4D",
            "kind": "arrears",
            "level": level,
            "state": "open",
            "report_ids": ["rp_1", "rp_2"],
            "ack_deadline": "2025-01-20T02:30:00+00:00",
        },
        "report": {
            "kind": "arrears",
            "region_code": "320102",
            "enterprise": {
                "name": "南京某建筑工程有限公司",
                "credit_code": "91320102MA1W2B3C4D",
                "industry": "E",
                "ownership": "private",
            },
            "workers_involved": 120,
            "migrant_workers_involved": 100,
            "summary": "工资拖欠三个月 / wages unpaid for three months",
            "arrears": {"amount_owed_cny": 1_200_000, "months_overdue": 3, "employer_absconded": False},
            "contact": {"name": "张三", "phone": "13800138000", "email": "zhangsan@example.com"},
        },
        "assessment": {
            "score": 86,
            "level": level,
            "rubric_version": "task7-v1",
            "reasons": [
                {"criterion": "C8", "points": 5, "text_zh": "农民工10人以上", "text_en": "10+ migrant workers"},
                {"criterion": "C1", "points": 25, "text_zh": "涉及职工100-299人", "text_en": "100-299 workers"},
                {"criterion": "C6", "points": 15, "text_zh": "欠薪100万元以上", "text_en": "Arrears of ¥1M or more"},
                {"criterion": "C7", "points": 12, "text_zh": "欠薪3个月以上", "text_en": "Overdue 3 months or more"},
            ],
        },
        "contact": {"id_number": "320102199001011234"},
    }


def test_title_names_level_kind_and_enterprise_zh_first() -> None:
    assert title(make_payload()) == ("【红色(I级)预警】欠薪 · 南京某建筑工程有限公司 / "
                                     "[red (level I) alert] Wage arrears")


@pytest.mark.parametrize(
    ("event", "level", "zh", "en"),
    [
        ("alert.opened", "orange", "【橙色(II级)预警】欠薪", "[orange (level II) alert] Wage arrears"),
        ("alert.level_raised", "red", "【红色(I级)预警】预警等级提升", "[red (level I) alert] Alert level raised"),
        ("alert.escalated", "yellow", "【黄色(III级)预警】逾期未确认，升级上报",
         "[yellow (level III) alert] Escalated"),
    ],
)
def test_title_says_what_happened(event: str, level: str, zh: str, en: str) -> None:
    text = title(make_payload(event, level))
    assert text.startswith(zh)
    assert en in text
    assert text.index(zh) < text.index(en)


def test_markdown_carries_the_facts_zh_before_en() -> None:
    text = markdown(make_payload())
    for fact in ("南京某建筑工程有限公司", "91320102MA1W2B3C4D", "320102", "120", "86", "task7-v1", "al_01HZX4K"):
        assert fact in text
    assert text.index("企业") < text.index("Enterprise")
    assert text.index("涉及职工100-299人") < text.index("100-299 workers")
    # The deadline is shown in Beijing time: 02:30 UTC is 10:30 in Nanjing.
    assert "2025-01-20 10:30" in text


def test_markdown_lists_the_top_three_reasons_by_points() -> None:
    text = markdown(make_payload())
    assert text.index("100-299 workers") < text.index("Arrears of ¥1M or more") < text.index("Overdue 3 months")
    assert "10+ migrant workers" not in text


def test_email_has_the_chinese_part_before_the_english_part() -> None:
    subject, body = email_text(make_payload())
    assert subject == title(make_payload())
    assert body.index("企业：南京某建筑工程有限公司") < body.index("Enterprise: 南京某建筑工程有限公司")
    assert body.index("请于 2025-01-20 10:30") < body.index("Please acknowledge by 2025-01-20 10:30")
    assert "al_01HZX4K" in body
    assert "待确认" in body
    assert "State: Open" in body


@pytest.mark.parametrize("render", [title, markdown, wecom_markdown, lambda p: "\n".join(email_text(p))])
def test_contact_data_never_appears(render: Any) -> None:
    text = render(make_payload())
    for value in CONTACT_VALUES:
        assert value not in text


def test_contact_block_is_never_read() -> None:
    class Untouchable(dict[str, Any]):
        def __getitem__(self, key: str) -> Any:
            raise AssertionError("contact was read")

        def get(self, key: str, default: Any = None) -> Any:
            raise AssertionError("contact was read")

    payload = make_payload()
    payload["contact"] = Untouchable(payload["contact"])
    payload["report"]["contact"] = Untouchable(payload["report"]["contact"])
    title(payload)
    markdown(payload)
    email_text(payload)


def test_a_multi_line_enterprise_name_cannot_break_the_layout() -> None:
    payload = make_payload()
    payload["report"]["enterprise"]["name"] = "某公司\n### 伪造标题"
    assert "\n" not in title(payload)
    assert "\n###" not in markdown(payload).split("\n", 1)[1]


def test_missing_fields_render_a_dash_rather_than_failing() -> None:
    payload = copy.deepcopy(make_payload())
    del payload["alert"]["ack_deadline"]
    payload["assessment"]["reasons"] = []
    text = markdown(payload)
    assert "Acknowledge by: **—**" in text


# --- links: the alert in the inbox and the body's one-click receipt -------------------------------------------------

ALERT_URL = "https://alerts.example.org/inbox#/alerts/al_01HZX4K"
RECEIPT_URL = "https://alerts.example.org/r/AbC-d_123"


def with_links() -> dict[str, Any]:
    payload = make_payload()
    payload["alert"] |= {"url": ALERT_URL, "receipt_url": RECEIPT_URL}
    return payload


@pytest.mark.parametrize("render", [markdown, wecom_markdown, lambda p: email_text(p)[1]],
                         ids=["dingtalk", "wecom", "email"])
def test_every_message_carries_the_alert_link_and_the_receipt_link(render: Any) -> None:
    text = render(with_links())

    assert ALERT_URL in text
    assert RECEIPT_URL in text
    assert text.index("确认接收") < text.index("Confirm receipt")


def test_wecom_uses_only_what_its_robot_markdown_renders() -> None:
    text = wecom_markdown(with_links())
    lines = text.split("\n")

    assert not [line for line in lines if line.lstrip().startswith(("- ", "* ", "+ "))]  # no lists in WeCom
    assert lines[0].startswith("### 【红色(I级)预警】")
    assert "> 企业 / Enterprise: 南京某建筑工程有限公司（91320102MA1W2B3C4D）" in lines
    assert '<font color="warning">2025-01-20 10:30 (UTC+8)</font>' in text
    assert f"]({ALERT_URL})" in text
    assert f"]({RECEIPT_URL})" in text
    assert text.index("100-299 workers") < text.index("Arrears of ¥1M or more") < text.index("Overdue 3 months")
    assert "10+ migrant workers" not in text


def test_wecom_keeps_the_links_when_the_name_is_very_long() -> None:
    payload = with_links()
    payload["report"]["enterprise"]["name"] = "很长的企业名称" * 400

    text = wecom_markdown(payload)

    assert len(text.encode()) <= 4096
    assert text.endswith(f"]({RECEIPT_URL})")


def test_dingtalk_keeps_its_list_markdown() -> None:
    assert "\n- 确认接收 / Confirm receipt: [" in markdown(with_links())


def test_a_link_cannot_break_out_of_its_markdown() -> None:
    payload = with_links()
    payload["alert"]["receipt_url"] = "https://a.example/r/x) [evil](https://evil.example"

    text = wecom_markdown(payload)

    assert "[evil](https://evil.example" not in text
    assert "x%29%20%5Bevil%5D%28https://evil.example" in text


def test_a_message_without_links_says_nothing_about_them() -> None:
    for text in (markdown(make_payload()), wecom_markdown(make_payload()), email_text(make_payload())[1]):
        assert "确认接收" not in text
        assert "View the alert" not in text
# --- the body's language (issue 12) ---------------------------------------------------------------------------------

CJK = re.compile(r"[\u3000-\u303f\u3400-\u9fff\uff00-\uffef]")
NAME = "南京某建筑工程有限公司"


def in_language(language: str | None, rule: str | None = "next_working_day") -> dict[str, Any]:
    payload = make_payload()
    if language is not None:
        payload["language"] = language
    payload["alert"]["ack_deadline_rule"] = rule
    return payload


def rendered(payload: dict[str, Any]) -> list[str]:
    subject, body = email_text(payload)
    return [title(payload), markdown(payload), subject, body]


def test_an_english_body_reads_english_only_but_every_fact() -> None:
    payload = in_language("en")
    for text in rendered(payload):
        assert not CJK.search(text.replace(NAME, "")), text
        assert NAME in text
    subject, body = email_text(payload)
    assert subject == title(payload) == f"[red (level I) alert] Wage arrears · {NAME}"
    assert "Please acknowledge by 2025-01-20 10:30" in body
    assert "Deadline rule: same time on the next working day" in body
    text = markdown(payload)
    assert "- Enterprise: 南京某建筑工程有限公司 (91320102MA1W2B3C4D)" in text
    assert "Acknowledge by: **2025-01-20 10:30 (UTC+8)** (same time on the next working day)" in text
    assert "  1. 100-299 workers (+25)" in text
    assert "120 (100 migrant workers)" in text


def test_a_chinese_body_reads_chinese_only() -> None:
    payload = in_language("zh")
    for text in rendered(payload):
        facts = ("task7-v1", "UTC", "al_01HZX4K", "91320102MA1W2B3C4D")  # ids and names, not words
        assert not re.search(r"[A-Za-z]{2,}", re.sub("|".join(facts), "", text)), text
    subject, body = email_text(payload)
    assert subject == title(payload) == f"【红色(I级)预警】欠薪 · {NAME}"
    assert "请于 2025-01-20 10:30 (UTC+8) 前确认。" in body
    assert "确认时限规则：下一个工作日同一时刻" in body
    assert "-" * 40 not in body
    text = markdown(payload)
    assert "- 企业: 南京某建筑工程有限公司（91320102MA1W2B3C4D）" in text
    assert "  1. 涉及职工100-299人（+25）" in text


@pytest.mark.parametrize("language", [None, "zh-en", "fr"])
def test_zh_en_is_the_default_and_says_everything_zh_first(language: str | None) -> None:
    payload = in_language(language, rule=None)
    baseline = make_payload()

    assert title(payload) == title(baseline)
    assert markdown(payload) == markdown(baseline)
    assert email_text(payload) == email_text(baseline)
    _subject, body = email_text(payload)
    assert body.index("企业：") < body.index("-" * 40) < body.index("Enterprise: ")


def test_the_rule_is_named_in_both_languages_for_a_bilingual_body() -> None:
    payload = in_language("zh-en", rule="next_working_day_weekends_only")

    assert ("（下一个工作日(日历未覆盖该年,仅按周末) / next working day (weekends only: year not in the calendar)）"
            in markdown(payload))
    _subject, body = email_text(payload)
    assert body.index("确认时限规则：下一个工作日(日历未覆盖该年,仅按周末)") < body.index(
        "Deadline rule: next working day (weekends only: year not in the calendar)")


def test_a_language_given_to_the_renderer_wins_over_the_payload() -> None:
    payload = in_language("zh")

    assert title(payload, "en") == f"[red (level I) alert] Wage arrears · {NAME}"
    assert not CJK.search(markdown(payload, "en").replace(NAME, ""))


# --- region names (issue 13 item 5) ---------------------------------------------------------------------------------


def test_every_message_names_the_region_with_its_city_and_keeps_the_code() -> None:
    payload = make_payload()

    assert "- 地区 / Region: 南京市 玄武区 / Xuanwu District, Nanjing（320102）" in markdown(payload)
    assert "> 地区 / Region: 南京市 玄武区 / Xuanwu District, Nanjing（320102）" in wecom_markdown(payload)
    body = email_text(payload)[1]
    assert "地区：南京市 玄武区（320102）" in body
    assert "Region: Xuanwu District, Nanjing (320102)" in body
    assert "- Region: Xuanwu District, Nanjing (320102)" in markdown(in_language("en"))
    assert "- 地区: 南京市 玄武区（320102）" in markdown(in_language("zh"))


def test_a_region_outside_the_file_shows_its_nearest_division_or_the_bare_code() -> None:
    payload = make_payload()
    payload["report"]["region_code"] = "330106"  # a district of Hangzhou: only Zhejiang is listed
    assert "地区：浙江省（330106）" in email_text(payload)[1]
    payload["report"]["region_code"] = "990000"
    assert "地区：990000" in email_text(payload)[1]
