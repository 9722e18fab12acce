"""Notification texts: zh-CN first then English, the facts a body needs, and never personal data."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from services.alerts.messages import email_text, markdown, title

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


@pytest.mark.parametrize("render", [title, markdown, lambda p: "\n".join(email_text(p))])
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
