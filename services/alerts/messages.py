"""The words of an alert notification (WeCom/DingTalk markdown, email), zh-CN first with English after it.

Built from the webhook payload (`schemas.WebhookPayload`, read here as `MessageInput`) so every channel says the
same thing; levels, kinds, events and states are named as everywhere else (`shared.labels`). Only named fields
are read: a `contact` block, or any other personal data, is never looked at, even when present; a missing field
renders as a dash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from shared.labels import Label, label


class _Lenient(BaseModel):
    """Message input: reads only the named fields (never `contact`), and a missing one renders as a dash."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class MessageReason(_Lenient):
    points: int | None = None
    text_zh: str | None = None
    text_en: str | None = None


class MessageAlert(_Lenient):
    alert_id: str | None = None
    credit_code: str | None = None
    kind: str | None = None
    level: str | None = None
    state: str | None = None
    report_ids: list[str] = Field(default_factory=list)
    ack_deadline: str | None = None


class MessageEnterprise(_Lenient):
    name: str | None = None


class MessageReport(_Lenient):
    kind: str | None = None
    region_code: str | None = None
    enterprise: MessageEnterprise = MessageEnterprise()
    workers_involved: int | None = None
    migrant_workers_involved: int | None = None


class MessageAssessment(_Lenient):
    score: int | None = None
    level: str | None = None
    rubric_version: str | None = None
    reasons: list[MessageReason] = Field(default_factory=list)


class MessageInput(_Lenient):
    """What a notification text is made of: the webhook payload's named fields."""

    event: str | None = None
    alert: MessageAlert = MessageAlert()
    report: MessageReport = MessageReport()
    assessment: MessageAssessment = MessageAssessment()


Payload: TypeAlias = MessageInput | Mapping[str, Any]
"""A typed message input, or a mapping (a parsed webhook payload) read as one."""

TOP_REASONS = 3
# China has kept one offset without daylight saving since 1991, so a fixed zone needs no tz database.
BEIJING_TIME = timezone(timedelta(hours=8), "Asia/Shanghai")

_WHITESPACE = re.compile(r"\s+")


def message_input(payload: Payload) -> MessageInput:
    """The payload as typed message input (a mapping, such as a parsed webhook body, is read field by field)."""
    if isinstance(payload, MessageInput):
        return payload
    return MessageInput.model_validate(payload)


def title(payload: Payload) -> str:
    """One line, e.g. "【红色(I级)预警】欠薪 · 南京某建筑工程有限公司 / [red (level I) alert] Wage arrears"."""
    message = message_input(payload)
    return _title(message, _text(message.report.enterprise.name))


def _title(message: MessageInput, name: str) -> str:
    level = label("level", _level(message))
    kind = label("kind", _kind(message))
    event = _text(message.event)
    prefix_zh, prefix_en = ("", "")
    if event in ("alert.level_raised", "alert.escalated"):
        what = label("event", event)
        prefix_zh, prefix_en = (f"{what.zh} · ", f"{what.en}: ")
    zh = f"【{level.zh}预警】{prefix_zh}{kind.zh} · {name}"
    return f"{zh} / [{level.en} alert] {prefix_en}{kind.en}"


def markdown(payload: Payload) -> str:
    """The WeCom/DingTalk markdown message: what happened, where, how serious, why, and by when to acknowledge.
    Text that comes from a report (enterprise name, codes, reasons) goes through `escape_markdown`."""
    message = message_input(payload)
    alert, report, assessment = message.alert, message.report, message.assessment
    event_zh, event_en = _both(label("event", _text(message.event)))
    safe = escape_markdown
    name = safe(_text(report.enterprise.name))
    lines = [
        f"### {_title(message, name)}",
        f"- 事件 / Event: {event_zh} / {event_en}",
        f"- 企业 / Enterprise: {name}（{safe(_text(alert.credit_code))}）",
        f"- 地区 / Region: {safe(_text(report.region_code))}",
        f"- 涉及职工 / Workers involved: {_workers(report)} / {_workers(report, english=True)}",
        f"- 风险分 / Score: **{_text(assessment.score)}**/100（{safe(_text(assessment.rubric_version))}）",
        "- 主要原因 / Top reasons:",
        *(f"  {n}. {safe(zh)} / {safe(en)}（+{points}）"
          for n, (zh, en, points) in enumerate(_top_reasons(message), start=1)),
        f"- 确认时限 / Acknowledge by: **{_deadline(alert.ack_deadline)}**",
        f"- 预警编号 / Alert ID: `{_text(alert.alert_id)}`",
    ]
    return "\n".join(lines)


def email_text(payload: Payload) -> tuple[str, str]:
    """(subject, plain-text body): the Chinese part first, then the same in English."""
    message = message_input(payload)
    alert, report, assessment = message.alert, message.report, message.assessment
    level_zh, level_en = _both(label("level", _level(message)))
    kind_zh, kind_en = _both(label("kind", _kind(message)))
    event_zh, event_en = _both(label("event", _text(message.event)))
    state_zh, state_en = _both(label("state", _text(alert.state)))
    reasons = _top_reasons(message)
    name = _text(report.enterprise.name)
    credit_code = _text(alert.credit_code)
    deadline = _deadline(alert.ack_deadline)
    score = f"{_text(assessment.score)}/100"
    rubric = _text(assessment.rubric_version)
    zh = [
        f"{event_zh}：{level_zh} · {kind_zh}",
        "",
        f"企业：{name}（{credit_code}）",
        f"地区：{_text(report.region_code)}",
        f"涉及职工：{_workers(report, english=False)}",
        f"风险分：{score}（{rubric}）",
        f"状态：{state_zh}",
        "主要原因：",
        *(f"  {n}. {zh}（+{points}）" for n, (zh, _en, points) in enumerate(reasons, start=1)),
        f"请于 {deadline} 前确认。",
        f"预警编号：{_text(alert.alert_id)}",
    ]
    en = [
        f"{event_en}: {level_en} · {kind_en}",
        "",
        f"Enterprise: {name} ({credit_code})",
        f"Region: {_text(report.region_code)}",
        f"Workers involved: {_workers(report, english=True)}",
        f"Score: {score} ({rubric})",
        f"State: {state_en}",
        "Top reasons:",
        *(f"  {n}. {en} (+{points})" for n, (_zh, en, points) in enumerate(reasons, start=1)),
        f"Please acknowledge by {deadline}.",
        f"Alert ID: {_text(alert.alert_id)}",
    ]
    return title(message), "\n".join([*zh, "", "-" * 40, "", *en]) + "\n"


# Characters that open markup in the robots' markdown (links, images, emphasis, code, headings, quotes, tables,
# HTML such as WeCom's <font>), mapped to their full-width forms. The robots do not reliably honour backslash
# escapes (WeCom shows the backslash), and full-width punctuation reads the same to a person in a Chinese text.
_MARKDOWN_SAFE = str.maketrans({
    "\\": "＼", "`": "｀", "*": "＊", "_": "＿", "[": "［", "]": "］", "(": "（", ")": "）", "<": "＜", ">": "＞",
    "#": "＃", "|": "｜", "~": "～", "!": "！", "{": "｛", "}": "｝",
})


def escape_markdown(text: str) -> str:
    """`text` (one line, from a report: an enterprise name, a note...) made inert in robot markdown: no link,
    image, emphasis, code, heading, quote, table or HTML can start in it, and no bare URL is auto-linked."""
    return _WHITESPACE.sub(" ", text).strip().translate(_MARKDOWN_SAFE).replace("://", "：//")


def _text(value: object) -> str:
    """A payload value as one line of text (no newlines that could break the markdown layout)."""
    if value is None:
        return "—"
    return _WHITESPACE.sub(" ", str(value)).strip() or "—"


def _both(text: Label) -> tuple[str, str]:
    return text.zh, text.en


def _level(message: MessageInput) -> str:
    return _text(message.alert.level or message.assessment.level)


def _kind(message: MessageInput) -> str:
    return _text(message.alert.kind or message.report.kind)


def _workers(report: MessageReport, *, english: bool = False) -> str:
    """The number of workers, with migrant workers beside it when there are any."""
    workers = _text(report.workers_involved)
    migrant = report.migrant_workers_involved
    if not migrant:
        return workers
    if english:
        return f"{workers} ({_text(migrant)} migrant workers)"
    return f"{workers}（其中农民工 {_text(migrant)}）"


def _top_reasons(message: MessageInput) -> list[tuple[str, str, int]]:
    """The reasons that gave the most points, most first (stable for ties: rubric order)."""
    reasons = [(_text(r.text_zh), _text(r.text_en), r.points or 0) for r in message.assessment.reasons]
    return sorted(reasons, key=lambda reason: -reason[2])[:TOP_REASONS]


def _deadline(value: str | None) -> str:
    """An ISO timestamp shown in Beijing time; anything unparsable is shown as given."""
    if value is None:
        return _text(value)
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return _text(value)
    if moment.tzinfo is None:
        return _text(value)
    return moment.astimezone(BEIJING_TIME).strftime("%Y-%m-%d %H:%M") + " (UTC+8)"
