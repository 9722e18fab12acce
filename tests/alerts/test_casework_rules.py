"""Case ownership rules (pure) and the words of the messages they add to: the responsible leader's line, the visits,
and the due notice of a screening round (zh-CN first, English beside it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.alerts import lifecycle
from services.alerts.lifecycle import AlertSnapshot
from services.alerts.messages import (
    NOTICE_MARKDOWN_UNITS,
    NoticeInput,
    email_text,
    markdown,
    notice_input,
    title,
    wecom_markdown,
)
from services.alerts.service import city_code
from shared.events import AlertState, RiskLevel

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 27, 6, 0, tzinfo=UTC)


def alert(state: AlertState = AlertState.open) -> AlertSnapshot:
    return AlertSnapshot(level=RiskLevel.orange, state=state, report_ids=("r",), updated_at=NOW, region_code="320102")


def test_only_a_notified_body_names_an_owner_and_not_on_a_resolved_alert() -> None:
    assert lifecycle.on_name_owner(alert(), "b", notified=True) == lifecycle.NameOwner("b")
    assert lifecycle.on_name_owner(alert(AlertState.acknowledged), "b", notified=True) == lifecycle.NameOwner("b")
    assert isinstance(lifecycle.on_name_owner(alert(), None, notified=False), lifecycle.NotAllowed)
    assert isinstance(lifecycle.on_name_owner(alert(), "b", notified=False), lifecycle.NotVisible)
    assert isinstance(lifecycle.on_name_owner(alert(AlertState.resolved), "b", notified=True), lifecycle.Conflict)


@pytest.mark.parametrize(("at", "state", "resolved_at", "visits", "expected"), [
    (NOW - timedelta(days=3), AlertState.open, None, 0, lifecycle.RecordVisit("b")),
    (NOW + lifecycle.VISIT_CLOCK_SKEW, AlertState.open, None, 0, lifecycle.RecordVisit("b")),
    (NOW + lifecycle.VISIT_CLOCK_SKEW + timedelta(seconds=1), AlertState.open, None, 0,
     lifecycle.VisitRefused("at", lifecycle.VISIT_IN_FUTURE)),
    (NOW - timedelta(days=2), AlertState.resolved, NOW - timedelta(days=1), 0, lifecycle.RecordVisit("b")),
    (NOW - timedelta(hours=1), AlertState.resolved, NOW - timedelta(days=1), 0, lifecycle.Conflict()),
    (NOW, AlertState.acknowledged, None, lifecycle.MAX_VISITS - 1, lifecycle.RecordVisit("b")),
    (NOW, AlertState.acknowledged, None, lifecycle.MAX_VISITS, lifecycle.VisitLogFull()),
])
def test_a_visit_is_recorded_when_it_took_place_and_while_the_log_has_room(
    at: datetime, state: AlertState, resolved_at: datetime | None, visits: int, expected: object,
) -> None:
    decision = lifecycle.on_record_visit(alert(state), "b", notified=True, at=at, now=NOW, resolved_at=resolved_at,
                                         visits=visits)
    assert decision == expected


def test_a_visit_needs_a_notified_body() -> None:
    assert isinstance(lifecycle.on_record_visit(alert(), "b", notified=False, at=NOW, now=NOW, resolved_at=None,
                                                visits=0), lifecycle.NotVisible)
    assert isinstance(lifecycle.on_record_visit(alert(), None, notified=False, at=NOW, now=NOW, resolved_at=None,
                                                visits=0), lifecycle.NotAllowed)


def alert_payload(**alert_fields: Any) -> dict[str, Any]:
    return {
        "event": "alert.escalated",
        "alert": {"alert_id": "al_1", "credit_code": "91320102MA1W2B3C4D", "kind": "arrears", "level": "orange",
                  "state": "open", "report_ids": ["rp_1"], "ack_deadline": "2026-11-28T02:30:00+00:00",
                  **alert_fields},
        "report": {"kind": "arrears", "region_code": "320102", "enterprise": {"name": "南京某建筑工程有限公司"}},
        "assessment": {"score": 60, "level": "orange", "rubric_version": "task7-v1", "reasons": []},
    }


def test_messages_name_the_responsible_leader_and_the_latest_visit_when_there_are_some() -> None:
    payload = alert_payload(
        owner={"person": "王建国", "title": "副主席", "body_id": "b", "body_name": "总工会", "at": "x"},
        visits=[{"at": "2026-11-26T01:00:00+00:00"}, {"at": "2026-11-26T12:30:00+08:00"}],
    )
    lines = markdown(payload).splitlines()
    subject, text = email_text(payload)

    assert "- 包案领导 / Responsible leader: 王建国(副主席)" in lines
    assert "- 走访记录 / Visits: 2（最近 / latest 2026-11-26 12:30 (UTC+8)）" in lines
    assert lines.index("- 包案领导 / Responsible leader: 王建国(副主席)") < len(lines) - 1  # before the alert id
    assert "包案领导：王建国(副主席)" in text.splitlines()
    assert "Responsible leader: 王建国(副主席)" in text.splitlines()
    assert "走访记录：2 次，最近一次 2026-11-26 12:30 (UTC+8)" in text.splitlines()
    assert "Visits: 2, latest 2026-11-26 12:30 (UTC+8)" in text.splitlines()
    assert "王建国" not in subject


def test_messages_without_owner_or_visits_say_nothing_of_them() -> None:
    text = markdown(alert_payload()) + email_text(alert_payload())[1]
    assert "包案" not in text
    assert "Responsible leader" not in text
    assert "走访" not in text


def notice(missing: int) -> dict[str, Any]:
    return {
        "event": "screening.round_due", "notice_id": "rd/320102",
        "round": {"round_id": "rd", "name": "2026年第四季度排查", "region_code": "320100",
                  "opens_at": "2026-11-01T00:00:00+00:00", "due_at": "2026-11-27T08:00:00+00:00"},
        "county": {"code": "320102", "name_zh": "玄武区", "name_en": "Xuanwu District"},
        "expected": missing + 2, "answered": 2, "no_risk": 1, "risks_reported": 1,
        "missing": [{"unit_id": f"u{n}", "name": f"第{n}号单位"} for n in range(1, missing + 1)],
        "inbox_url": "http://127.0.0.1:8003/inbox",
    }


def test_the_due_notice_lists_the_units_that_did_not_answer_in_both_languages() -> None:
    payload = notice(3)
    assert notice_input(payload) == NoticeInput.model_validate(payload)
    subject, text = email_text(payload)
    robot = markdown(payload)

    assert title(payload) == ("【排查截止】2026年第四季度排查 · 玄武区：3 家单位未回复 / "
                              "[Screening due] Xuanwu District: 3 units did not answer")
    assert subject == title(payload)
    assert robot.startswith(f"### {title(payload)}\n")
    assert "- 截止时间 / Due: 2026-11-27 16:00 (UTC+8)" in robot.splitlines()
    assert "  3. 第3号单位" in robot.splitlines()
    assert ("- 应答单位 / Expected: 5；已回复 / answered: **2**（无风险隐患 / no risk: 1，"
            "报告风险 / risks reported: 1）") in robot
    zh, en = text.split("-" * 40)
    assert "未回复单位：" in zh
    assert "  1. 第1号单位（u1）" in zh.splitlines()
    assert "Units that did not answer:" in en
    assert "  3. 第3号单位（u3）" in en.splitlines()
    assert "预警" not in text  # a notice, not an alert: no deadline to acknowledge
    assert "acknowledge" not in text.lower()


def test_a_long_list_is_cut_in_robot_messages_but_whole_in_the_email() -> None:
    payload = notice(NOTICE_MARKDOWN_UNITS + 5)
    robot = markdown(payload)
    _, text = email_text(payload)

    assert f"  {NOTICE_MARKDOWN_UNITS}. 第{NOTICE_MARKDOWN_UNITS}号单位" in robot.splitlines()
    assert f"第{NOTICE_MARKDOWN_UNITS + 1}号单位" not in robot
    assert "  …… 另有 5 家 / and 5 more" in robot.splitlines()
    assert f"第{NOTICE_MARKDOWN_UNITS + 5}号单位" in text


def test_a_notice_when_every_unit_answered_says_so() -> None:
    payload = notice(0)
    assert title(payload).endswith("全部单位已回复 / [Screening due] Xuanwu District: every unit answered")
    assert "- 全部单位均已回复 / Every unit answered" in markdown(payload).splitlines()
    assert "Every unit answered." in email_text(payload)[1]


def test_coverage_is_counted_by_city() -> None:
    assert city_code("320102") == "320100"
    assert city_code("320585") == "320500"
    assert city_code("810001") == "810000"  # no city level


def test_wecom_messages_carry_the_leader_and_the_notice_in_its_markdown_subset() -> None:
    payload = alert_payload(owner={"person": "王建国", "title": "副主席"})
    robot = wecom_markdown(payload).splitlines()
    due = wecom_markdown(notice(2)).splitlines()

    assert "> 包案领导 / Responsible leader: 王建国(副主席)" in robot
    assert due[0] == f"### {title(notice(2))}"
    assert "> 排查轮次 / Round: 2026年第四季度排查" in due
    assert "2. 第2号单位" in due
    assert not any(line.startswith(("- ", "  ")) for line in due)  # WeCom renders no lists
