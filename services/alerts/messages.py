"""The words of an alert notification (WeCom/DingTalk markdown, email), in the language of the body it goes to:
`zh`, `en`, or `zh-en` (the default: zh-CN first with English after it). The payload names the language
(`language`, set per body by `service.webhook_payload`); a renderer may also be given one. The due notice of a
screening round (which belongs to no alert) has renderers of its own (`notice_*`).

Built from the webhook payload (`schemas.WebhookPayload`, read here as `MessageInput`) so every channel says the
same thing; levels, kinds, events and states are named as everywhere else (`shared.labels`). Only named fields
are read: a `contact` block, or any other personal data, is never looked at, even when present; a missing field
renders as a dash.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, TypeAlias

from pydantic import BaseModel, ConfigDict, Field

from shared import regions
from shared.labels import Label, label


class _Lenient(BaseModel):
    """Message input: reads only the named fields (never `contact`), and a missing one renders as a dash."""

    model_config = ConfigDict(extra="ignore", frozen=True)


class MessageReason(_Lenient):
    points: int | None = None
    text_zh: str | None = None
    text_en: str | None = None


class MessageOwner(_Lenient):
    person: str | None = None
    title: str | None = None


class MessageVisit(_Lenient):
    at: str | None = None


class MessageAlert(_Lenient):
    alert_id: str | None = None
    credit_code: str | None = None
    kind: str | None = None
    level: str | None = None
    state: str | None = None
    report_ids: list[str] = Field(default_factory=list)
    ack_deadline: str | None = None
    owner: MessageOwner | None = None
    visits: list[MessageVisit] = Field(default_factory=list)
    url: str | None = None
    receipt_url: str | None = None
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


class NoticeUnit(_Lenient):
    unit_id: str | None = None
    name: str | None = None


class NoticeRound(_Lenient):
    round_id: str | None = None
    name: str | None = None
    region_code: str | None = None
    due_at: str | None = None


class NoticeCounty(_Lenient):
    code: str | None = None
    name_zh: str | None = None
    name_en: str | None = None


class NoticeInput(_Lenient):
    """What the due notice of a screening round is made of: `schemas.ScreeningNoticePayload`'s named fields."""

    event: str | None = None
    round: NoticeRound = NoticeRound()
    county: NoticeCounty = NoticeCounty()
    expected: int | None = None
    answered: int | None = None
    no_risk: int | None = None
    risks_reported: int | None = None
    missing: list[NoticeUnit] = Field(default_factory=list)
    inbox_url: str | None = None


Payload: TypeAlias = MessageInput | NoticeInput | Mapping[str, Any]
"""A typed message input (an alert's or a notice's), or a mapping (a parsed webhook payload) read as one."""

NOTICE_EVENTS = frozenset({"screening.round_due"})

TOP_REASONS = 3
# China has kept one offset without daylight saving since 1991, so a fixed zone needs no tz database.
BEIJING_TIME = timezone(timedelta(hours=8), "Asia/Shanghai")


def message_input(payload: Payload) -> MessageInput:
    """The payload as typed message input (a mapping, such as a parsed webhook body, is read field by field)."""
    if isinstance(payload, MessageInput):
        return payload
    if isinstance(payload, NoticeInput):
        return MessageInput()
    return MessageInput.model_validate(payload)


def notice_input(payload: Payload) -> NoticeInput | None:
    """The payload as a notice's input when it is one (a screening round's due notice), else None."""
    if isinstance(payload, NoticeInput):
        return payload
    if isinstance(payload, Mapping) and payload.get("event") in NOTICE_EVENTS:
        return NoticeInput.model_validate(payload)
    return None


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


def title(payload: Payload, language: str | None = None, *, markdown_safe: bool = False) -> str:
    """One line, e.g. "【红色(I级)预警】欠薪 · 南京某建筑工程有限公司 / [red (level I) alert] Wage arrears" (zh-en); in
    `en` only "[red (level I) alert] Wage arrears · 南京某建筑工程有限公司" (the name is the enterprise's own)."""
    notice = notice_input(payload)
    if notice is not None:
        return notice_title(notice)
    message = message_input(payload)
    chosen = language_of(message, language)
    level = label("level", _level(message))
    kind = label("kind", _kind(message))
    event = _text(message.event)
    name = _text(message.report.enterprise.name)
    if markdown_safe:  # a heading of robot markdown: report text must not format or link
        name = escape_markdown(name)
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
    notice = notice_input(payload)
    if notice is not None:
        return notice_markdown(notice)
    message = message_input(payload)
    chosen = language_of(message, language)
    alert, report, assessment = message.alert, message.report, message.assessment
    event_zh, event_en = _both(label("event", _text(message.event)))
    english = chosen == "en"
    open_paren, close_paren = (" (", ")") if english else ("（", "）")
    rule = _rule(alert.ack_deadline_rule, chosen)
    safe = escape_markdown  # text that comes from a report (enterprise name, codes, reasons)
    lines = [
        f"### {title(message, chosen, markdown_safe=True)}",
        f"- {_pick(chosen, '事件', 'Event')}: {_pick(chosen, event_zh, event_en)}",
        f"- {_pick(chosen, '企业', 'Enterprise')}: {safe(_text(report.enterprise.name))}"
        f"{open_paren}{safe(_text(alert.credit_code))}{close_paren}",
        f"- {_pick(chosen, '地区', 'Region')}: {safe(_region(report.region_code, chosen), keep_parentheses=True)}",
        f"- {_pick(chosen, '涉及职工', 'Workers involved')}: "
        f"{_pick(chosen, _workers(report), _workers(report, english=True))}",
        f"- {_pick(chosen, '风险分', 'Score')}: **{_text(assessment.score)}**/100"
        f"{open_paren}{safe(_text(assessment.rubric_version))}{close_paren}",
        f"- {_pick(chosen, '主要原因', 'Top reasons')}:",
        *(f"  {n}. {_pick(chosen, safe(zh), safe(en, keep_parentheses=True))}{open_paren}+{points}{close_paren}"
          for n, (zh, en, points) in enumerate(_top_reasons(message), start=1)),
        f"- {_pick(chosen, '确认时限', 'Acknowledge by')}: **{_deadline(alert.ack_deadline)}**"
        + (f"{open_paren}{rule}{close_paren}" if rule else ""),
        *_casework_lines(alert, chosen=chosen),
        f"- {_pick(chosen, '预警编号', 'Alert ID')}: `{_text(alert.alert_id)}`",
        *(f"- {name}: [{text}]({url})" for name, text, url in _links(alert, chosen)),
    ]
    return "\n".join(lines)


WECOM_NAME_MAX = 200  # an enterprise name longer than intake allows is cut, so the links at the end always fit


def wecom_markdown(payload: Payload) -> str:
    """The WeCom group robot's markdown message. Its `markdown` type renders headings, bold, links, inline code,
    `>` quotes and `<font color="info|comment|warning">`, but no lists: facts are quoted lines, reasons numbered
    lines, and the two links (the alert in the inbox, the one-click receipt) come last."""
    notice = notice_input(payload)
    if notice is not None:
        return notice_wecom_markdown(notice)
    message = message_input(payload)
    alert, report, assessment = message.alert, message.report, message.assessment
    event_zh, event_en = _both(label("event", _text(message.event)))
    safe = escape_markdown
    name = safe(_text(report.enterprise.name)[:WECOM_NAME_MAX])
    lines = [
        f"### {title(message, markdown_safe=True)[: WECOM_NAME_MAX * 2]}",
        f'> 事件 / Event: <font color="warning">{event_zh} / {event_en}</font>',
        f"> 企业 / Enterprise: {name}（{safe(_text(alert.credit_code))}）",
        f"> 地区 / Region: {safe(_region(report.region_code, 'zh-en'), keep_parentheses=True)}",
        f"> 涉及职工 / Workers involved: {_workers(report)} / {_workers(report, english=True)}",
        f"> 风险分 / Score: **{_text(assessment.score)}**/100（{_text(assessment.rubric_version)}）",
        f'> 确认时限 / Acknowledge by: <font color="warning">{_deadline(alert.ack_deadline)}</font>',
        *(f"> {line.removeprefix('- ')}" for line in _casework_lines(alert)),
        f"> 预警编号 / Alert ID: `{_text(alert.alert_id)}`",
        "",
        "**主要原因 / Top reasons**",
        *(f"{n}. {safe(zh)} / {safe(en, keep_parentheses=True)}（+{points}）"
          for n, (zh, en, points) in enumerate(_top_reasons(message), start=1)),
        "",
        *(f"{name}: [{text}]({url})" for name, text, url in _links(alert)),
    ]
    return "\n".join(lines).rstrip("\n")


def email_text(payload: Payload, language: str | None = None) -> tuple[str, str]:
    """(subject, plain-text body) in the body's language: for `zh-en` the Chinese part first, then the same in
    English; for `zh` or `en` that part alone."""
    notice = notice_input(payload)
    if notice is not None:
        return notice_email_text(notice)
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
        f"地区：{_region(report.region_code, 'zh')}",
        f"涉及职工：{_workers(report, english=False)}",
        f"风险分：{score}（{rubric}）",
        f"状态：{state_zh}",
        "主要原因：",
        *(f"  {n}. {zh}（+{points}）" for n, (zh, _en, points) in enumerate(reasons, start=1)),
        f"请于 {deadline} 前确认。",
        *([f"确认时限规则：{rule_zh}"] if rule_zh else []),
        *_casework_lines(alert, language="zh"),
        f"预警编号：{_text(alert.alert_id)}",
        *([f"查看预警：{alert.url}"] if alert.url else []),
        *([f"确认接收（只需填写姓名）：{alert.receipt_url}"] if alert.receipt_url else []),
    ]
    en = [
        f"{event_en}: {level_en} · {kind_en}",
        "",
        f"Enterprise: {name} ({credit_code})",
        f"Region: {_region(report.region_code, 'en')}",
        f"Workers involved: {_workers(report, english=True)}",
        f"Score: {score} ({rubric})",
        f"State: {state_en}",
        "Top reasons:",
        *(f"  {n}. {en} (+{points})" for n, (_zh, en, points) in enumerate(reasons, start=1)),
        f"Please acknowledge by {deadline}.",
        *([f"Deadline rule: {rule_en}"] if rule_en else []),
        *_casework_lines(alert, language="en"),
        f"Alert ID: {_text(alert.alert_id)}",
        *([f"View the alert: {alert.url}"] if alert.url else []),
        *([f"Confirm receipt (your name only): {alert.receipt_url}"] if alert.receipt_url else []),
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


def _links(alert: MessageAlert, language: MessageLanguage = DEFAULT_LANGUAGE) -> list[tuple[str, str, str]]:
    """(what, link text, address) of the alert's page in the inbox and of the body's one-click receipt link."""
    links = []
    if alert.url:
        links.append((_pick(language, "查看预警", "View the alert"),
                      _pick(language, "在收件箱中打开", "Open in the inbox"), _link_target(alert.url)))
    if alert.receipt_url:
        links.append((_pick(language, "确认接收", "Confirm receipt"),
                      _pick(language, "一键确认（只需填写姓名）", "One click, your name only"),
                      _link_target(alert.receipt_url)))
    return links


def _link_target(url: str) -> str:
    """A URL safe inside a markdown link: no spaces, brackets or line breaks can end it early."""
    return _LINK_UNSAFE.sub(_percent_encoded, url)  # one scan in C, not a Python step per character


_LINK_UNSAFE = re.compile(r'[\s()<>\[\]"]')


def _percent_encoded(match: re.Match[str]) -> str:
    return f"%{ord(match.group()):02X}"


# Characters that open markup in the robots' markdown (links, images, emphasis, code, headings, quotes, tables,
# HTML such as WeCom's <font>), mapped to their full-width forms. The robots do not reliably honour backslash
# escapes (WeCom shows the backslash), and full-width punctuation reads the same to a person in a Chinese text.
_MARKDOWN_SAFE = str.maketrans({
    "\\": "＼", "`": "｀", "*": "＊", "_": "＿", "[": "［", "]": "］", "(": "（", ")": "）", "<": "＜", ">": "＞",
    "#": "＃", "|": "｜", "~": "～", "!": "！", "{": "｛", "}": "｝",
})


_KEEP_PARENTHESES = {ord("("): "(", ord(")"): ")"}
_MARKDOWN_SAFE_KEEPING_PARENTHESES = {**_MARKDOWN_SAFE, **_KEEP_PARENTHESES}  # built once: this runs per field


def escape_markdown(text: str, *, keep_parentheses: bool = False) -> str:
    """`text` (one line, from a report: an enterprise name, a note...) made inert in robot markdown: no link,
    image, emphasis, code, heading, quote, table or HTML can start in it, and no bare URL is auto-linked.
    `keep_parentheses` leaves ( ) as they are (without brackets they open nothing): for English text, which
    full-width forms would turn into Chinese punctuation."""
    table = _MARKDOWN_SAFE_KEEPING_PARENTHESES if keep_parentheses else _MARKDOWN_SAFE
    return " ".join(text.split()).translate(table).replace("://", "：//")  # runs of whitespace as one space


def _region(code: object, language: MessageLanguage) -> str:
    """Where it happened, by name with the code beside it: "南京市 玄武区（320102）", "Xuanwu District, Nanjing
    (320102)", or both for `zh-en`. Officers know places by name; the code tells apart two districts of one name.
    A code outside the regions file shows as the code alone."""
    code_text = _text(code)
    found = regions.region(code_text)
    if found is None:
        nearest = regions.nearest(code_text)
        if nearest is None:
            return code_text
        zh, en = nearest.name_zh, nearest.name_en
    else:
        city = regions.region(found.parent) if found.level == "county" and found.parent else None
        zh = f"{city.name_zh} {found.name_zh}" if city else found.name_zh
        en = f"{found.name_en}, {city.name_en}" if city else found.name_en
    if language == "zh":
        return f"{zh}（{code_text}）"
    if language == "en":
        return f"{en} ({code_text})"
    return f"{zh} / {en}（{code_text}）"


def _text(value: object) -> str:
    """A payload value as one line of text (no newlines that could break the markdown layout)."""
    if value is None:
        return "—"
    # Runs of whitespace as one space, none at the ends: `split()` splits at what `\s` matches, without a regex
    # (this runs for every field of every message the consumer renders).
    return " ".join(str(value).split()) or "—"


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


# --- case ownership (包案) in alert messages -------------------------------------------------------------------------


def _casework_lines(alert: MessageAlert, *, language: str | None = None,
                    chosen: MessageLanguage = DEFAULT_LANGUAGE) -> list[str]:
    """The responsible leader and the visits, when there are any: markdown list items in the `chosen` language
    (`language` None), or the lines of the Chinese or the English part of an e-mail (`language` "zh" or "en")."""
    lines: list[str] = []
    if alert.owner is not None:
        owner = f"{_text(alert.owner.person)}({_text(alert.owner.title)})"
        lines.append({None: f"- {_pick(chosen, '包案领导', 'Responsible leader')}: {owner}",
                      "zh": f"包案领导：{owner}", "en": f"Responsible leader: {owner}"}[language])
    if alert.visits:
        count, latest = len(alert.visits), _deadline(_latest(v.at for v in alert.visits))
        latest_words = {"zh": f"（最近 {latest}）", "en": f" (latest {latest})"}.get(
            chosen, f"（最近 / latest {latest}）")
        lines.append({None: f"- {_pick(chosen, '走访记录', 'Visits')}: {count}{latest_words}",
                      "zh": f"走访记录：{count} 次，最近一次 {latest}",
                      "en": f"Visits: {count}, latest {latest}"}[language])
    return lines


def _latest(values: Iterable[str | None]) -> str | None:
    """The latest of these ISO timestamps (compared as moments, whatever their offsets), or None."""
    moments = []
    for value in values:
        try:
            moment = datetime.fromisoformat((value or "").replace("Z", "+00:00"))
        except ValueError:
            continue
        if moment.tzinfo is not None:
            moments.append(moment)
    return max(moments).isoformat() if moments else None


# --- the due notice of a screening round (常态化排查) ----------------------------------------------------------------

NOTICE_MARKDOWN_UNITS = 30  # the robots' markdown is short (WeCom: 4096 bytes); the e-mail lists every unit


def notice_title(notice: NoticeInput) -> str:
    """E.g. "【排查截止】第四季度排查 · 鼓楼区：3 家单位未回复 / [Screening due] Gulou District: 3 units did not
    answer"."""
    county_zh, county_en = _text(notice.county.name_zh), _text(notice.county.name_en)
    missing = len(notice.missing)
    if not missing:
        return (f"【排查截止】{_text(notice.round.name)} · {county_zh}：全部单位已回复 / [Screening due] {county_en}: "
                "every unit answered")
    return (f"【排查截止】{_text(notice.round.name)} · {county_zh}：{missing} 家单位未回复 / [Screening due] "
            f"{county_en}: {missing} units did not answer")


def notice_markdown(notice: NoticeInput) -> str:
    """The WeCom/DingTalk markdown of the due notice: the round, the county's figures, the units that did not
    answer (the first `NOTICE_MARKDOWN_UNITS`; the e-mail and the webhook carry all)."""
    shown = notice.missing[:NOTICE_MARKDOWN_UNITS]
    more = len(notice.missing) - len(shown)
    lines = [
        f"### {notice_title(notice)}",
        f"- 排查轮次 / Round: {_text(notice.round.name)}",
        f"- 地区 / County: {_text(notice.county.name_zh)} / {_text(notice.county.name_en)}"
        f"（{_text(notice.county.code)}）",
        f"- 截止时间 / Due: {_deadline(notice.round.due_at)}",
        f"- 应答单位 / Expected: {_text(notice.expected)}；已回复 / answered: **{_text(notice.answered)}**"
        f"（无风险隐患 / no risk: {_text(notice.no_risk)}，报告风险 / risks reported: "
        f"{_text(notice.risks_reported)}）",
    ]
    if notice.missing:
        lines.append(f"- 未回复单位 / Units that did not answer ({len(notice.missing)}):")
        lines += [f"  {n}. {_text(unit.name)}" for n, unit in enumerate(shown, start=1)]
        if more:
            lines.append(f"  …… 另有 {more} 家 / and {more} more")
        lines.append("- 请督促未回复单位尽快报送 / Please follow up with the units that did not answer")
    else:
        lines.append("- 全部单位均已回复 / Every unit answered")
    if notice.inbox_url:
        lines.append(f"- 查看排查覆盖 / Screening coverage: [在收件箱中打开 / Open in the inbox]"
                     f"({_link_target(notice.inbox_url)})")
    return "\n".join(lines)


def notice_wecom_markdown(notice: NoticeInput) -> str:
    """The due notice in WeCom's markdown subset (no lists): the facts as quoted lines, the units numbered."""
    lines = []
    for line in notice_markdown(notice).splitlines():
        if line.startswith("- "):
            lines.append(f"> {line[2:]}")
        else:
            lines.append(line.strip() if line.startswith("  ") else line)
    return "\n".join(lines)


def notice_email_text(notice: NoticeInput) -> tuple[str, str]:
    """(subject, plain-text body) of the due notice: the Chinese part first, then the same in English; every unit
    that did not answer is listed."""
    round_name, due = _text(notice.round.name), _deadline(notice.round.due_at)
    county = f"{_text(notice.county.name_zh)}（{_text(notice.county.code)}）"
    units = [f"  {n}. {_text(unit.name)}（{_text(unit.unit_id)}）" for n, unit in enumerate(notice.missing, start=1)]
    figures = (_text(notice.expected), _text(notice.answered), _text(notice.no_risk), _text(notice.risks_reported))
    zh = [
        f"排查截止通知：{round_name}",
        "",
        f"地区：{county}",
        f"截止时间：{due}",
        "应答单位：{}；已回复：{}（无风险隐患 {}，报告风险 {}）".format(*figures),
        *(["未回复单位：", *units, "请督促未回复单位尽快报送。"] if units else ["全部单位均已回复。"]),
        *([f"查看排查覆盖：{notice.inbox_url}"] if notice.inbox_url else []),
    ]
    en = [
        f"Screening round due: {round_name}",
        "",
        f"County: {_text(notice.county.name_en)} ({_text(notice.county.code)})",
        f"Due: {due}",
        "Expected: {}; answered: {} (no risk: {}, risks reported: {})".format(*figures),
        *(["Units that did not answer:", *units, "Please follow up with them."] if units
          else ["Every unit answered."]),
        *([f"Screening coverage: {notice.inbox_url}"] if notice.inbox_url else []),
    ]
    return notice_title(notice), "\n".join([*zh, "", "-" * 40, "", *en]) + "\n"
