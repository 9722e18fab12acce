"""Unit-controlled text in robot markdown (WeCom/DingTalk) cannot inject links, images, emphasis, headings or HTML:
`escape_markdown` and the messages that use it."""

from __future__ import annotations

import re

import pytest

from services.alerts import messages
from services.alerts.messages import escape_markdown, markdown, title

pytestmark = pytest.mark.unit

MARKUP = re.compile(r"[\\`*_\[\]()<>#|~!{}]|://")


@pytest.mark.parametrize("text", [
    "[点击领取补贴](https://evil.example/phish)",
    "![x](https://evil.example/pixel.png)",
    "**加粗** _斜体_ `code` ~~删~~",
    '<font color="warning">伪造警告</font>',
    "# 标题 > 引用 | 表格 |",
    "https://evil.example/auto-link",
    "a\\*b",
])
def test_escaped_text_has_no_markup_left(text: str) -> None:
    escaped = escape_markdown(text)
    assert not MARKUP.search(escaped), escaped


def test_ordinary_names_read_the_same() -> None:
    assert escape_markdown("南京某建筑工程有限公司") == "南京某建筑工程有限公司"
    assert escape_markdown("南京（江宁）建设集团 A-1.2") == "南京（江宁）建设集团 A-1.2"
    assert escape_markdown("链接 [官网](x)") == "链接 ［官网］（x）"


def test_newlines_cannot_start_a_new_markdown_line() -> None:
    assert "\n" not in escape_markdown("公司\n### 假标题\n- 假条目")


def _payload(name: str, reason_zh: str = "拖欠工资") -> dict[str, object]:
    return {
        "event": "alert.opened",
        "alert": {"alert_id": "a-1", "credit_code": "91320100MA1XXXXXX1", "kind": "arrears", "level": "red",
                  "state": "open", "ack_deadline": "2026-11-27T02:00:00+00:00"},
        "report": {"kind": "arrears", "region_code": "320102", "enterprise": {"name": name},
                   "workers_involved": 45},
        "assessment": {"score": 88, "level": "red", "rubric_version": "task7-v1",
                       "reasons": [{"points": 30, "text_zh": reason_zh, "text_en": "Wage arrears [x](y)"}]},
    }


def test_the_robot_message_escapes_the_enterprise_name_and_reasons() -> None:
    text = markdown(_payload("恶意[点我](https://evil.example) **公司**", reason_zh="<font>原因</font>"))
    assert "](" not in text
    assert "https://evil" not in text
    assert "<font>" not in text
    assert "恶意［点我］（https：//evil.example） ＊＊公司＊＊" in text
    # The message's own markup is still there.
    assert text.startswith("### ")
    assert "**88**/100" in text


def test_the_email_subject_keeps_the_name_as_written() -> None:
    assert "[点我]" in title(_payload("恶意[点我]公司"))


def test_every_kind_of_whitespace_reads_as_one_space_and_links_stay_whole() -> None:
    # Tabs, full-width spaces, line and paragraph separators, no-break spaces: one space each run, none at the ends.
    assert escape_markdown(" 南京\u3000某\t\t建筑\u2028公司\xa0 有限\u2029") == "南京 某 建筑 公司 有限"
    assert messages._text("\n 欠薪\u3000\u3000 两个月 \t") == "欠薪 两个月"
    assert messages._text(" \u3000\n") == "—"
    assert messages._link_target('https://x.example/a b(c)<d>[e]"f\u3000g\nh') == (
        "https://x.example/a%20b%28c%29%3Cd%3E%5Be%5D%22f%3000g%0Ah")
