"""The words of an alert notification (WeCom/DingTalk markdown, email), zh-CN first with English after it.

Built from the webhook payload (`{"event", "alert", "report", "assessment"}`) so every channel says the same thing.
Only named fields are read: a `contact` block, or any other personal data, is never looked at, even when present.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

Payload = Mapping[str, Any]

TOP_REASONS = 3
# China has kept one offset without daylight saving since 1991, so a fixed zone needs no tz database.
BEIJING_TIME = timezone(timedelta(hours=8), "Asia/Shanghai")

_LEVELS: dict[str, tuple[str, str]] = {
    "red": ("红色预警 I级", "RED alert"),
    "orange": ("橙色预警 II级", "ORANGE alert"),
    "yellow": ("黄色预警 III级", "YELLOW alert"),
    "blue": ("蓝色 IV级", "BLUE"),
    "none": ("无", "none"),
}
_KINDS: dict[str, tuple[str, str]] = {
    "arrears": ("欠薪", "Wage arrears"),
    "dispute": ("劳动争议", "Labour dispute"),
    "stability": ("职工队伍稳定风险", "Workforce stability risk"),
}
_EVENTS: dict[str, tuple[str, str]] = {
    "alert.opened": ("新预警", "New alert"),
    "alert.level_raised": ("预警等级提升", "Alert level raised"),
    "alert.escalated": ("逾期未确认，升级上报", "Escalated: not acknowledged in time"),
}
_STATES: dict[str, tuple[str, str]] = {
    "open": ("待确认", "open"),
    "acknowledged": ("已确认", "acknowledged"),
    "resolved": ("已办结", "resolved"),
}
_WHITESPACE = re.compile(r"\s+")


def title(payload: Payload) -> str:
    """One line, e.g. "【红色预警 I级】欠薪 · 南京某建筑工程有限公司 / [RED alert] Wage arrears"."""
    level_zh, level_en = _label(_LEVELS, _level(payload))
    kind_zh, kind_en = _label(_KINDS, _kind(payload))
    event = _text(payload.get("event"))
    prefix_zh, prefix_en = ("", "")
    if event in ("alert.level_raised", "alert.escalated"):
        event_zh, event_en = _EVENTS[event]
        prefix_zh, prefix_en = (f"{event_zh} · ", f"{event_en}: ")
    zh = f"【{level_zh}】{prefix_zh}{kind_zh} · {_enterprise_name(payload)}"
    return f"{zh} / [{level_en}] {prefix_en}{kind_en}"


def markdown(payload: Payload) -> str:
    """The WeCom/DingTalk markdown message: what happened, where, how serious, why, and by when to acknowledge."""
    alert, report, assessment = _parts(payload)
    event_zh, event_en = _label(_EVENTS, _text(payload.get("event")))
    lines = [
        f"### {title(payload)}",
        f"- 事件 / Event: {event_zh} / {event_en}",
        f"- 企业 / Enterprise: {_enterprise_name(payload)}（{_text(alert.get('credit_code'))}）",
        f"- 地区 / Region: {_text(report.get('region_code'))}",
        f"- 涉及职工 / Workers involved: {_workers(report)} / {_workers(report, english=True)}",
        f"- 风险分 / Score: **{_text(assessment.get('score'))}**/100（{_text(assessment.get('rubric_version'))}）",
        "- 主要原因 / Top reasons:",
        *(f"  {n}. {zh} / {en}（+{points}）" for n, (zh, en, points) in enumerate(_top_reasons(payload), start=1)),
        f"- 确认时限 / Acknowledge by: **{_deadline(alert.get('ack_deadline'))}**",
        f"- 预警编号 / Alert ID: `{_text(alert.get('alert_id'))}`",
    ]
    return "\n".join(lines)


def email_text(payload: Payload) -> tuple[str, str]:
    """(subject, plain-text body): the Chinese part first, then the same in English."""
    alert, report, assessment = _parts(payload)
    level_zh, level_en = _label(_LEVELS, _level(payload))
    kind_zh, kind_en = _label(_KINDS, _kind(payload))
    event_zh, event_en = _label(_EVENTS, _text(payload.get("event")))
    state_zh, state_en = _label(_STATES, _text(alert.get("state")))
    reasons = _top_reasons(payload)
    name = _enterprise_name(payload)
    credit_code = _text(alert.get("credit_code"))
    deadline = _deadline(alert.get("ack_deadline"))
    score = f"{_text(assessment.get('score'))}/100"
    rubric = _text(assessment.get("rubric_version"))
    zh = [
        f"{event_zh}：{level_zh} · {kind_zh}",
        "",
        f"企业：{name}（{credit_code}）",
        f"地区：{_text(report.get('region_code'))}",
        f"涉及职工：{_workers(report, english=False)}",
        f"风险分：{score}（{rubric}）",
        f"状态：{state_zh}",
        "主要原因：",
        *(f"  {n}. {zh}（+{points}）" for n, (zh, _en, points) in enumerate(reasons, start=1)),
        f"请于 {deadline} 前确认。",
        f"预警编号：{_text(alert.get('alert_id'))}",
    ]
    en = [
        f"{event_en}: {level_en} · {kind_en}",
        "",
        f"Enterprise: {name} ({credit_code})",
        f"Region: {_text(report.get('region_code'))}",
        f"Workers involved: {_workers(report, english=True)}",
        f"Score: {score} ({rubric})",
        f"State: {state_en}",
        "Top reasons:",
        *(f"  {n}. {en} (+{points})" for n, (_zh, en, points) in enumerate(reasons, start=1)),
        f"Please acknowledge by {deadline}.",
        f"Alert ID: {_text(alert.get('alert_id'))}",
    ]
    return title(payload), "\n".join([*zh, "", "-" * 40, "", *en]) + "\n"


def _parts(payload: Payload) -> tuple[Payload, Payload, Payload]:
    return _mapping(payload.get("alert")), _mapping(payload.get("report")), _mapping(payload.get("assessment"))


def _mapping(value: object) -> Payload:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str:
    """A payload value as one line of text (no newlines that could break the markdown layout)."""
    if value is None:
        return "—"
    return _WHITESPACE.sub(" ", str(value)).strip() or "—"


def _label(labels: Mapping[str, tuple[str, str]], key: str) -> tuple[str, str]:
    return labels.get(key, (key, key))


def _level(payload: Payload) -> str:
    alert, _, assessment = _parts(payload)
    return _text(alert.get("level") or assessment.get("level"))


def _kind(payload: Payload) -> str:
    alert, report, _ = _parts(payload)
    return _text(alert.get("kind") or report.get("kind"))


def _enterprise_name(payload: Payload) -> str:
    _, report, _ = _parts(payload)
    return _text(_mapping(report.get("enterprise")).get("name"))


def _workers(report: Payload, *, english: bool = False) -> str:
    """The number of workers, with migrant workers beside it when there are any."""
    workers = _text(report.get("workers_involved"))
    migrant = report.get("migrant_workers_involved")
    if not migrant:
        return workers
    if english:
        return f"{workers} ({_text(migrant)} migrant workers)"
    return f"{workers}（其中农民工 {_text(migrant)}）"


def _top_reasons(payload: Payload) -> list[tuple[str, str, int]]:
    """The reasons that gave the most points, most first (stable for ties: rubric order)."""
    _, _, assessment = _parts(payload)
    raw = assessment.get("reasons")
    reasons = [
        (_text(r.get("text_zh")), _text(r.get("text_en")), int(r.get("points") or 0))
        for r in (raw if isinstance(raw, list) else [])
        if isinstance(r, Mapping)
    ]
    return sorted(reasons, key=lambda reason: -reason[2])[:TOP_REASONS]


def _deadline(value: object) -> str:
    """An ISO timestamp shown in Beijing time; anything unparsable is shown as given."""
    if not isinstance(value, str):
        return _text(value)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return _text(value)
    if moment.tzinfo is None:
        return _text(value)
    return moment.astimezone(BEIJING_TIME).strftime("%Y-%m-%d %H:%M") + " (UTC+8)"
