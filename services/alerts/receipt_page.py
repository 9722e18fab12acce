"""The one-click receipt page (`/r/{token}`): a small zh-CN page with English beside every text, rendered on the
server so it works in any mail client's browser without scripts.

It shows which alert and which body the link is for, and asks only for the name of the person confirming; after
the post it says the receipt was recorded, and a link that no longer works says why (used, resolved, superseded,
expired, invalid). Every value is HTML-escaped.
"""

from __future__ import annotations

from html import escape

from services.alerts.messages import BEIJING_TIME
from services.alerts.schemas import ReceiptStatus, ReceiptView
from shared import regions
from shared.labels import Label, label

PAGE_TITLE = Label("确认接收预警", "Confirm receipt of an alert")

MESSAGES: dict[ReceiptStatus, Label] = {
    ReceiptStatus.ready: Label("请填写您的姓名，确认本机构已收到该预警。",
                               "Enter your name to confirm that your body has received this alert."),
    ReceiptStatus.confirmed: Label("已记录：本机构已确认接收该预警。", "Recorded: your body has confirmed receipt."),
    ReceiptStatus.used: Label("本机构已确认接收该预警，此链接不能再次使用。",
                              "Your body has already confirmed receipt; this link cannot be used again."),
    ReceiptStatus.resolved: Label("该预警已办结，确认链接已失效。",
                                  "This alert has been resolved; the receipt link no longer works."),
    ReceiptStatus.superseded: Label("该预警等级已提升，请使用最新消息中的确认链接。",
                                    "The alert's level was raised since; please use the link in the latest message."),
    ReceiptStatus.expired: Label("此确认链接已过期，请登录预警收件箱确认。",
                                 "This receipt link has expired; please confirm in the alert inbox."),
    ReceiptStatus.invalid: Label("此确认链接无效（可能被截断或修改）。",
                                 "This receipt link is not valid (it may have been cut short or altered)."),
}

_STYLE = """
main { max-width: 36rem; }
.lines { margin: 0 0 1rem; }
.lines dt { color: var(--muted); font-size: .9rem; }
.lines dd { margin: 0 0 .5rem; }
.notice { font-weight: 600; }
.notice.ok { color: var(--ok); }
.notice.gone { color: var(--error); }
form .field { margin-bottom: .75rem; }
"""


MISSING_PERSON = Label("请填写确认人姓名（最多 100 字）。", "Please enter your name (at most 100 characters).")


def render(view: ReceiptView, *, missing_person: bool = False) -> str:
    """The whole page for `view` (the form posts back to the page's own address); `missing_person` when a post
    came without a usable name."""
    message = MISSING_PERSON if missing_person else MESSAGES[view.status]
    tone = " gone" if missing_person else {"ready": "", "confirmed": " ok"}.get(view.status.value, " gone")
    parts = [f'<p class="notice{tone}" id="message" data-status="{view.status.value}">{_both(message)}</p>']
    if view.alert_id is not None:
        parts.append(_alert_lines(view))
    if view.person is not None and view.at is not None:
        who = escape(view.person)
        when = escape(view.at.astimezone(BEIJING_TIME).strftime("%Y-%m-%d %H:%M")) + " (UTC+8)"
        parts.append(f'<p id="receipt">确认人：{who}，{when} / Confirmed by {who} at {when}</p>')
    if view.status == ReceiptStatus.ready:
        parts.append(
            '<form method="post" action="" id="receipt-form">'
            '<div class="field"><label for="person">确认人姓名 / Your name</label>'
            '<input type="text" id="person" name="person" required maxlength="100" autocomplete="name"></div>'
            '<button type="submit" class="primary">确认接收 / Confirm receipt</button>'
            "</form>"
        )
    if view.url is not None and view.status != ReceiptStatus.ready:
        parts.append(f'<p><a href="{escape(view.url)}">在预警收件箱中查看 / View in the alert inbox</a></p>')
    return (
        '<!doctype html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="robots" content="noindex">'
        f"<title>{_both(PAGE_TITLE)}</title>"
        f'<link rel="stylesheet" href="/static/common.css"><style>{_STYLE}</style></head>'
        f"<body><header><h1>{_both(PAGE_TITLE)}</h1></header><main><section>{''.join(parts)}</section></main>"
        "</body></html>\n"
    )


def _alert_lines(view: ReceiptView) -> str:
    level = label("level", view.level.value) if view.level else None
    kind = label("kind", view.kind.value) if view.kind else None
    region = regions.label(view.region_code, with_city=True) if view.region_code else None
    rows = [
        (Label("预警", "Alert"), " · ".join(_both(x) for x in (level, kind) if x is not None)),
        (Label("企业", "Enterprise"), escape(view.enterprise_name or "—")),
        (Label("地区", "Region"), escape(region or view.region_code or "—")),
        (Label("接收机构", "Receiving body"), escape(view.body_name or "—")),
    ]
    items = "".join(f"<dt>{_both(name)}</dt><dd>{value}</dd>" for name, value in rows)
    return f'<dl class="lines" id="alert">{items}</dl>'


def _both(text: Label) -> str:
    return escape(text.both)
