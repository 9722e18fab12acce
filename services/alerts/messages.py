"""The words of an alert notification (WeCom/DingTalk markdown, email), in the language of the body it goes to:
`zh`, `en`, or `zh-en` (the default: zh-CN first with English after it). The payload names the language
(`language`, set per body by `service.webhook_payload`); a renderer may also be given one.

Built from the webhook payload (`schemas.WebhookPayload`, read here as `MessageInput`) so every channel says the
same thing; levels, kinds, events and states are named as everywhere else (`shared.labels`). Only named fields
are read: a `contact` block, or any other personal data, is never looked at, even when present; a missing field
renders as a dash.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, TypeAlias

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
    ack_deadline_rule: str | None = None


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
    language: str | None = Field(default=None, description="The body's: zh, en or zh-en (None: zh-en)")
    alert: MessageAlert = MessageAlert()
    report: MessageReport = MessageReport()
    assessment: MessageAssessment = MessageAssessment()


MessageLanguage = Literal["zh", "en", "zh-en"]
"""The language of a body's messages: Chinese, English, or Chinese first with English beside it (the default)."""
LANGUAGES: tuple[MessageLanguage, ...] = ("zh", "en", "zh-en")
DEFAULT_LANGUAGE: MessageLanguage = "zh-en"

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


def language_of(payload: Payload, language: str | None = None) -> MessageLanguage:
    """The language to render in: `language` if given, else the payload's (the body's), else `zh-en`; an
    unknown value is read as `zh-en`, so a message is never lost for a word."""
    chosen = language if language is not None else message_input(payload).language
    return chosen if chosen in LANGUAGES else DEFAULT_LANGUAGE


def _pick(language: MessageLanguage, zh: str, en: str) -> str:
    """`zh`, `en`, or `zh / en` (the platform's bilingual form)."""
    if language == "zh":
        return zh
    if language == "en":
        return en
    return f"{zh} / {en}"


def title(payload: Payload, language: str | None = None) -> str:
    """One line, e.g. "【红色(I级)预警】欠薪 · 南京某建筑工程有限公司 / [red (level I) alert] Wage arrears" (zh-en); in
    `en` only "[red (level I) alert] Wage arrears · 南京某建筑工程有限公司" (the name is the enterprise's own)."""
    message = message_input(payload)
    chosen = language_of(message, language)
    level = label("level", _level(message))
    kind = label("kind", _kind(message))
    event = _text(message.event)
    name = _text(message.report.enterprise.name)
    prefix_zh, prefix_en = ("", "")
    if event in ("alert.level_raised", "alert.escalated"):
        what = label("event", event)
        prefix_zh, prefix_en = (f"{what.zh} · ", f"{what.en}: ")
    zh = f"【{level.zh}预警】{prefix_zh}{kind.zh} · {name}"
    en = f"[{level.en} alert] {prefix_en}{kind.en}"
    if chosen == "zh":
        return zh
    if chosen == "en":
        return f"{en} · {name}"
    return f"{zh} / {en}"


def markdown(payload: Payload, language: str | None = None) -> str:
    """The WeCom/DingTalk markdown message: what happened, where, how serious, why, and by when to acknowledge;
    in the body's language (`zh`, `en`, or both on each line for `zh-en`)."""
    message = message_input(payload)
    chosen = language_of(message, language)
    alert, report, assessment = message.alert, message.report, message.assessment
    event_zh, event_en = _both(label("event", _text(message.event)))
    english = chosen == "en"
    open_paren, close_paren = (" (", ")") if english else ("（", "）")
    rule = _rule(alert.ack_deadline_rule, chosen)
    lines = [
        f"### {title(message, chosen)}",
        f"- {_pick(chosen, '事件', 'Event')}: {_pick(chosen, event_zh, event_en)}",
        f"- {_pick(chosen, '企业', 'Enterprise')}: {_text(report.enterprise.name)}"
        f"{open_paren}{_text(alert.credit_code)}{close_paren}",
        f"- {_pick(chosen, '地区', 'Region')}: {_text(report.region_code)}",
        f"- {_pick(chosen, '涉及职工', 'Workers involved')}: "
        f"{_pick(chosen, _workers(report), _workers(report, english=True))}",
        f"- {_pick(chosen, '风险分', 'Score')}: **{_text(assessment.score)}**/100"
        f"{open_paren}{_text(assessment.rubric_version)}{close_paren}",
        f"- {_pick(chosen, '主要原因', 'Top reasons')}:",
        *(f"  {n}. {_pick(chosen, zh, en)}{open_paren}+{points}{close_paren}"
          for n, (zh, en, points) in enumerate(_top_reasons(message), start=1)),
        f"- {_pick(chosen, '确认时限', 'Acknowledge by')}: **{_deadline(alert.ack_deadline)}**"
        + (f"{open_paren}{rule}{close_paren}" if rule else ""),
        f"- {_pick(chosen, '预警编号', 'Alert ID')}: `{_text(alert.alert_id)}`",
    ]
    return "\n".join(lines)


def email_text(payload: Payload, language: str | None = None) -> tuple[str, str]:
    """(subject, plain-text body) in the body's language: for `zh-en` the Chinese part first, then the same in
    English; for `zh` or `en` that part alone."""
    message = message_input(payload)
    chosen = language_of(message, language)
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
    rule_zh, rule_en = _rule(alert.ack_deadline_rule, "zh"), _rule(alert.ack_deadline_rule, "en")
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
        *([f"确认时限规则：{rule_zh}"] if rule_zh else []),
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
        *([f"Deadline rule: {rule_en}"] if rule_en else []),
        f"Alert ID: {_text(alert.alert_id)}",
    ]
    subject = title(message, chosen)
    if chosen == "zh":
        return subject, "\n".join(zh) + "\n"
    if chosen == "en":
        return subject, "\n".join(en) + "\n"
    return subject, "\n".join([*zh, "", "-" * 40, "", *en]) + "\n"


def _rule(rule: str | None, language: MessageLanguage) -> str:
    """What set the deadline, in words (`shared.labels` DEADLINE_RULES); empty when the payload names no rule."""
    if not rule:
        return ""
    text = label("deadline_rule", _text(rule))
    return _pick(language, text.zh, text.en)


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
