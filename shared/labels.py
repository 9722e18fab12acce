"""The one catalogue of user-facing labels, Chinese first and English beside it.

Messages, reasons and both web pages name risk levels, report kinds, alert states, resolve outcomes, body kinds
and levels with these words and no others. Python code reads them directly:

    from shared.labels import RISK_LEVELS, label
    RISK_LEVELS["red"].zh            # "红色(I级)"
    label("outcome", "expired").both  # "超期未续报,系统关闭 / closed by the system"

The pages read them from `/static/labels.js` (served by `shared.webpages.install_static`), which defines
`LABELS = {"zh": {"level.red": ...}, "en": {...}}`, keyed `<group>.<value>` as the pages' own i18n keys are.
To add or change a label, edit this file only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

Language = Literal["zh", "en"]


@dataclass(frozen=True)
class Label:
    zh: str
    en: str

    @property
    def both(self) -> str:
        """`中文 / English`, the form of every bilingual text of the platform."""
        return f"{self.zh} / {self.en}"

    def text(self, language: Language) -> str:
        return self.zh if language == "zh" else self.en


# Risk levels: the rubric (services/risk/rubrics/*.yaml, `levels[].name_zh/name_en`) uses the same names.
RISK_LEVELS: Mapping[str, Label] = {
    "red": Label("红色(I级)", "red (level I)"),
    "orange": Label("橙色(II级)", "orange (level II)"),
    "yellow": Label("黄色(III级)", "yellow (level III)"),
    "blue": Label("蓝色(IV级)", "blue (level IV)"),
    "none": Label("无", "none"),
}

REPORT_KINDS: Mapping[str, Label] = {
    "dispute": Label("劳动争议", "Labour dispute"),
    "arrears": Label("欠薪", "Wage arrears"),
    "stability": Label("职工队伍稳定风险", "Workforce stability risk"),
}

# Where a report stands in intake (accepted → assessed → alerted).
REPORT_STATUSES: Mapping[str, Label] = {
    "accepted": Label("已受理", "Accepted"),
    "assessed": Label("已评估", "Assessed"),
    "alerted": Label("已预警", "Alerted"),
}

ALERT_STATES: Mapping[str, Label] = {
    "open": Label("待确认", "Open"),
    "acknowledged": Label("已确认", "Acknowledged"),
    "resolved": Label("已办结", "Resolved"),
}

# What happened to an alert (the `alert.*` events of alerts.v1), as notifications announce it.
ALERT_EVENTS: Mapping[str, Label] = {
    "alert.opened": Label("新预警", "New alert"),
    "alert.level_raised": Label("预警等级提升", "Alert level raised"),
    "alert.escalated": Label("逾期未确认，升级上报", "Escalated: not acknowledged in time"),
    "alert.acknowledged": Label("预警已确认", "Alert acknowledged"),
    "alert.resolved": Label("预警已办结", "Alert resolved"),
    "alert.owner_named": Label("已明确包案领导", "Responsible leader named"),
    "alert.visit_recorded": Label("已记录走访", "Visit recorded"),
}

# Notices that belong to no alert (deliveries of kind `screening_notice`).
NOTICE_EVENTS: Mapping[str, Label] = {
    "screening.round_due": Label("排查截止通知", "Screening round due"),
}

# How an alert was resolved: the first six are chosen by a body; `expired` is set by the system only.
RESOLVE_OUTCOMES: Mapping[str, Label] = {
    "mediated": Label("调解成功", "Mediated"),
    "arbitrated": Label("仲裁", "Arbitrated"),
    "paid": Label("已支付", "Paid"),
    "litigated": Label("诉讼", "Litigated"),
    "withdrawn": Label("撤回", "Withdrawn"),
    "other": Label("其他", "Other"),
    "expired": Label("超期未续报,系统关闭", "closed by the system"),
}
BODY_OUTCOMES: tuple[str, ...] = ("mediated", "arbitrated", "paid", "litigated", "withdrawn", "other")
"""The outcomes a body may choose when it resolves an alert (every outcome but `expired`)."""

BODY_KINDS: Mapping[str, Label] = {
    "union": Label("工会", "Trade union"),
    "mediation_centre": Label("劳动争议调解中心", "Labour dispute mediation centre"),
    "arbitration": Label("劳动人事争议仲裁院", "Labour dispute arbitration"),
    "labour_inspection": Label("劳动保障监察", "Labour inspection"),
    "legal_aid": Label("法律援助中心", "Legal aid centre"),
}

BODY_LEVELS: Mapping[str, Label] = {
    "county": Label("区县级", "County"),
    "city": Label("市级", "City"),
    "province": Label("省级", "Province"),
}

# Industry sections of GB/T 4754-2017 (国民经济行业分类, 门类 A-T): the `enterprise.industry` of a report, as the
# situation answer and the exports name them. Not in CATALOGUE (the pages): the report form keeps its own
# `industry.*` keys for now, and a key may live in one place only.
INDUSTRIES: Mapping[str, Label] = {
    "A": Label("农、林、牧、渔业", "Agriculture, forestry, animal husbandry and fishery"),
    "B": Label("采矿业", "Mining"),
    "C": Label("制造业", "Manufacturing"),
    "D": Label("电力、热力、燃气及水生产和供应业", "Electricity, heat, gas and water production and supply"),
    "E": Label("建筑业", "Construction"),
    "F": Label("批发和零售业", "Wholesale and retail trade"),
    "G": Label("交通运输、仓储和邮政业", "Transport, storage and postal services"),
    "H": Label("住宿和餐饮业", "Accommodation and catering"),
    "I": Label("信息传输、软件和信息技术服务业", "Information transmission, software and IT services"),
    "J": Label("金融业", "Finance"),
    "K": Label("房地产业", "Real estate"),
    "L": Label("租赁和商务服务业", "Leasing and business services"),
    "M": Label("科学研究和技术服务业", "Scientific research and technical services"),
    "N": Label("水利、环境和公共设施管理业", "Water conservancy, environment and public facilities management"),
    "O": Label("居民服务、修理和其他服务业", "Resident services, repair and other services"),
    "P": Label("教育", "Education"),
    "Q": Label("卫生和社会工作", "Health and social work"),
    "R": Label("文化、体育和娱乐业", "Culture, sports and entertainment"),
    "S": Label("公共管理、社会保障和社会组织", "Public administration, social security and social organisations"),
    "T": Label("国际组织", "International organisations"),
}

# What set an alert's acknowledgement deadline (services/alerts/working_time.py `AckDeadline.rule`).
DEADLINE_RULES: Mapping[str, Label] = {
    "clock_hours": Label("按小时计(昼夜连续)", "clock hours, day and night"),
    "next_working_day": Label("下一个工作日同一时刻", "same time on the next working day"),
    "next_working_day_weekends_only": Label("下一个工作日(日历未覆盖该年,仅按周末)",
                                            "next working day (weekends only: year not in the calendar)"),
}

# The language a body reads its messages and inbox in (`zh-en`: Chinese first, English beside it).
BODY_LANGUAGES: Mapping[str, Label] = {
    "zh": Label("中文", "Chinese"),
    "en": Label("英文", "English"),
    "zh-en": Label("中英双语", "Chinese and English"),
}

# Where one delivery of an alert stands (the alert detail's `deliveries[].state`).
DELIVERY_STATES: Mapping[str, Label] = {
    "pending": Label("待发送/重试中", "Pending"),
    "delivered": Label("已送达", "Delivered"),
    "failed": Label("送达失败", "Failed"),
    "cancelled": Label("已取消(机构已停用或删除渠道)", "Cancelled"),
}

# What a report says, in words (the alert detail's `reports[]`): the kind's details, collective actions, petition
# and online exposure. Their groups are not the report form's own keys (`dispute_type.*`, `stage.*`, `ca.*`...),
# which the form still defines itself: a key may live in one place only.
DISPUTE_TYPES: Mapping[str, Label] = {
    "wages": Label("工资报酬", "Wages"),
    "social_insurance": Label("社会保险", "Social insurance"),
    "termination": Label("解除/终止劳动合同", "Termination of the contract"),
    "overtime": Label("加班及工时", "Overtime and working hours"),
    "work_injury": Label("工伤", "Work injury"),
    "collective_contract": Label("集体合同", "Collective contract"),
    "other": Label("其他", "Other"),
}

DISPUTE_STAGES: Mapping[str, Label] = {
    "negotiation": Label("协商", "Negotiation"),
    "mediation": Label("调解中", "In mediation"),
    "mediation_failed": Label("调解不成", "Mediation failed"),
    "arbitration": Label("仲裁", "Arbitration"),
    "litigation": Label("诉讼", "Litigation"),
}

STABILITY_EVENTS: Mapping[str, Label] = {
    "closure": Label("停业关闭", "Closure"),
    "bankruptcy": Label("破产", "Bankruptcy"),
    "relocation": Label("搬迁", "Relocation"),
    "mass_layoff": Label("规模性裁员", "Mass layoff"),
    "restructuring": Label("改制重组", "Restructuring"),
    "social_insurance_arrears": Label("欠缴社会保险", "Social insurance arrears"),
    "platform_rule_change": Label("平台规则调整", "Platform rule change"),
}

COLLECTIVE_ACTIONS: Mapping[str, Label] = {
    "gathering": Label("聚集", "Gathering"),
    "work_stoppage": Label("停工", "Work stoppage"),
    "road_blocking": Label("堵路", "Road blocking"),
    "occupation": Label("占据场所", "Occupation of premises"),
}

PETITIONS: Mapping[str, Label] = {
    "none": Label("无信访", "No petition"),
    "local": Label("本地信访", "Local petition"),
    "repeated": Label("重复信访", "Repeated petitions"),
    "skip_level": Label("越级信访", "Skip-level petition"),
}

ONLINE_EXPOSURES: Mapping[str, Label] = {
    "none": Label("无网络舆情", "No online exposure"),
    "posted": Label("已发帖", "Posted online"),
    "spreading": Label("正在扩散", "Spreading online"),
    "trending": Label("登上热搜", "Trending"),
    "media": Label("媒体报道", "Reported by the media"),
}

# What happened to an alert, as its detail's timeline names each entry (`TimelineEntry.type`).
TIMELINE_EVENTS: Mapping[str, Label] = {
    "opened": Label("预警生成", "Opened"),
    "joined": Label("新报告并入", "Report joined"),
    "level_raised": Label("等级提升", "Level raised"),
    "notified": Label("已通知", "Notified"),
    "delivery": Label("发送", "Delivery"),
    "escalated": Label("升级上报", "Escalated"),
    "acknowledged": Label("确认接收", "Receipt confirmed"),
    "resolved": Label("办结", "Resolved"),
    "expired": Label("超期未续报,系统关闭", "Closed by the system"),
    "owner_named": Label("明确包案领导", "Responsible leader named"),
    "visit": Label("走访", "Visit"),
}

# How a delivery attempt ended, as the alert detail's timeline names it (`TimelineEntry.result`).
DELIVERY_RESULTS: Mapping[str, Label] = {
    "pending": Label("待发送", "Pending"),
    "retrying": Label("发送失败,重试中", "Retrying"),
    "delivered": Label("已送达", "Delivered"),
    "failed": Label("送达失败", "Failed"),
}

# The channels a body is reached by (`ChannelConfig.type`), as the alert detail's timeline names them.
CHANNELS: Mapping[str, Label] = {
    "webhook": Label("Webhook", "Webhook"),
    "email": Label("电子邮件", "E-mail"),
    "wecom": Label("企业微信", "WeCom"),
    "dingtalk": Label("钉钉", "DingTalk"),
}

# Where a screening round (常态化排查) stands (`RoundCoverage.state`).
ROUND_STATES: Mapping[str, Label] = {
    "upcoming": Label("未开始", "Upcoming"),
    "open": Label("进行中", "Open"),
    "closed": Label("已截止", "Closed"),
}

CATALOGUE: Mapping[str, Mapping[str, Label]] = {
    "level": RISK_LEVELS,
    "kind": REPORT_KINDS,
    "status": REPORT_STATUSES,
    "state": ALERT_STATES,
    "event": ALERT_EVENTS,
    "notice": NOTICE_EVENTS,
    "outcome": RESOLVE_OUTCOMES,
    "body_kind": BODY_KINDS,
    "body_level": BODY_LEVELS,
    "deadline_rule": DEADLINE_RULES,
    "body_language": BODY_LANGUAGES,
    "delivery_state": DELIVERY_STATES,
    "dispute_kind": DISPUTE_TYPES,
    "dispute_stage": DISPUTE_STAGES,
    "stability_event": STABILITY_EVENTS,
    "collective_action": COLLECTIVE_ACTIONS,
    "petition_status": PETITIONS,
    "online_exposure_level": ONLINE_EXPOSURES,
    "timeline": TIMELINE_EVENTS,
    "round_state": ROUND_STATES,
    "delivery_result": DELIVERY_RESULTS,
    "channel": CHANNELS,
}
"""Every group by the prefix the pages use in their keys (`level.red`, `outcome.expired`, ...)."""


def label(group: str, value: str) -> Label:
    """The label of `value` in `group`; an unknown value is shown as itself rather than failing a message."""
    return CATALOGUE[group].get(value) or Label(value, value)


def for_pages() -> dict[str, dict[str, str]]:
    """The catalogue as the pages' i18n tables: `{"zh": {"level.red": "红色(I级)", ...}, "en": {...}}`."""
    tables: dict[str, dict[str, str]] = {"zh": {}, "en": {}}
    for group, labels in CATALOGUE.items():
        for value, text in labels.items():
            tables["zh"][f"{group}.{value}"] = text.zh
            tables["en"][f"{group}.{value}"] = text.en
    return tables
