"""Request and response models of the alerts API and the webhook payload (the input of the e-mail/robot messages,
`MessageInput`, is defined beside the texts in `messages.py` and exported here too).

"Body" here always means an organisation (a union federation, a mediation centre...); request bodies are called
payloads.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from services.alerts.channels import ChannelConfig
from services.alerts.messages import DEFAULT_LANGUAGE, MessageLanguage
from services.alerts.messages import MessageInput as MessageInput  # re-exported: the messages' input
from services.alerts.models import DeliveryState
from services.alerts.routing import BodyKind, BodyLevel
from services.alerts.working_time import DeadlineRule
from shared.events import AlertState, Reason, RiskLevel
from shared.regions import region_code_problem
from shared.report import ReportKind


def _iso(value: datetime) -> str:
    return value.isoformat()


Timestamp = Annotated[datetime, PlainSerializer(_iso, return_type=str, when_used="json")]
"""A moment, shown as `datetime.isoformat()` (`+00:00`, as the API has always shown it)."""


Outcome = Literal["mediated", "arbitrated", "paid", "litigated", "withdrawn", "other"]
"""How a body closed an alert; the system closes with `expired`."""


# --- bodies --------------------------------------------------------------------------------------------------------


def body_region_code_problem(value: str, level: BodyLevel | None) -> str | None:
    """Why `value` is not a region code for a body of `level` (county 320106, city 320100, province 320000): the one
    rule of `shared.regions`, which intake applies to reports and units too."""
    return region_code_problem(value, level.value if level is not None else "county")


LANGUAGE_DESCRIPTION = ("The language of the body's messages and inbox: zh (Chinese), en (English) or zh-en "
                        "(Chinese first, English beside it; the default)")


class BodyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    kind: BodyKind
    level: BodyLevel
    region_code: str
    channels: Annotated[list[ChannelConfig], Field(min_length=1, max_length=10)]
    language: MessageLanguage = Field(default=DEFAULT_LANGUAGE, description=LANGUAGE_DESCRIPTION)

    @field_validator("region_code")
    @classmethod
    def _matches_level(cls, value: str, info: ValidationInfo) -> str:
        problem = body_region_code_problem(value, info.data.get("level"))
        if problem is not None:
            raise PydanticCustomError("region_code", problem)
        return value


class BodyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    channels: Annotated[list[ChannelConfig], Field(min_length=1, max_length=10)] | None = None
    active: bool | None = None
    language: MessageLanguage | None = Field(default=None, description=LANGUAGE_DESCRIPTION)


class BodyCreated(BaseModel):
    body_id: str
    token: str = Field(description="Shown once: the body signs in to the inbox and the API with it")


class BodyToken(BaseModel):
    body_id: str
    token: str = Field(description="Shown once: the body's new token; the previous one is refused from now on")


class BodyView(BaseModel):
    body_id: str
    name: str
    kind: str
    level: str
    region_code: str
    channels: list[dict[str, Any]] = Field(description="Channel types and targets; secrets are never shown")
    active: bool
    created_at: datetime
    language: MessageLanguage = Field(description=LANGUAGE_DESCRIPTION)


class MeView(BaseModel):
    """The body a token belongs to (`GET /v1/me`): what the inbox needs to greet it and speak its language."""

    body_id: str
    name: str
    kind: str
    level: str
    region_code: str
    language: MessageLanguage = Field(description=LANGUAGE_DESCRIPTION)


# --- receipts (acknowledgements) -------------------------------------------------------------------------------------

PERSON_MAX_LENGTH = 100
ACK_NOTE_MAX_LENGTH = 2000
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # tabs and newlines are fine in a note, nothing else is


def _person(value: str) -> str:
    value = value.strip()
    if not value:
        raise PydanticCustomError("person", "请填写确认人姓名 / the name of the person confirming is required")
    if _CONTROL.search(value) or "\n" in value or "\t" in value:
        raise PydanticCustomError("person", "姓名不能含控制字符 / the name must not contain control characters")
    return value


def _note(value: str) -> str:
    if _CONTROL.search(value):
        raise PydanticCustomError("note", "备注不能含控制字符 / the note must not contain control characters")
    return value.strip()


Person = Annotated[str, Field(min_length=1, max_length=PERSON_MAX_LENGTH), AfterValidator(_person)]
AckNote = Annotated[str, Field(max_length=ACK_NOTE_MAX_LENGTH), AfterValidator(_note)] | None
"""An optional note; blank is no note."""


class AcknowledgementPayload(BaseModel):
    """`POST /v1/alerts/{id}/ack`: who at the body confirms receipt, and an optional note."""

    model_config = ConfigDict(extra="forbid")

    person: Person = Field(description="The name of the officer confirming receipt for the body")
    note: AckNote = None


class ReceiptForm(BaseModel):
    """`POST /r/{token}`: the one-click receipt asks only for the person's name."""

    model_config = ConfigDict(extra="ignore")

    person: Person


class AcknowledgementView(BaseModel):
    """A body's confirmation of receipt."""

    body_id: str
    body_name: str
    person: str
    note: str | None
    level: RiskLevel = Field(description="The alert's level the body confirmed (a level raise asks again)")
    via: Literal["api", "link"] = Field(description="api (the inbox or a client) or link (the receipt link)")
    at: Timestamp


class ReceiptStatus(StrEnum):
    """What a receipt link gives: the form, a recorded receipt, or why it no longer works."""

    ready = "ready"  # 200: the form asking for the person's name
    confirmed = "confirmed"  # 200: the receipt was recorded now
    used = "used"  # 410: the body already confirmed (by this link or otherwise)
    resolved = "resolved"  # 410: the alert was resolved
    superseded = "superseded"  # 410: the alert's level was raised since; the newer message has a newer link
    expired = "expired"  # 410: past the link's lifetime
    invalid = "invalid"  # 403: malformed, forged or altered


RECEIPT_STATUS_CODES: dict[ReceiptStatus, int] = {
    ReceiptStatus.ready: 200, ReceiptStatus.confirmed: 200, ReceiptStatus.used: 410, ReceiptStatus.resolved: 410,
    ReceiptStatus.superseded: 410, ReceiptStatus.expired: 410, ReceiptStatus.invalid: 403,
}


class ReceiptView(BaseModel):
    """What the receipt page shows (and `POST /r/{token}` answers as JSON): the alert and the body, nothing else."""

    status: ReceiptStatus
    alert_id: str | None = None
    enterprise_name: str | None = None
    kind: ReportKind | None = None
    level: RiskLevel | None = None
    region_code: str | None = None
    body_name: str | None = None
    person: str | None = Field(default=None, description="Who confirmed (confirmed, used)")
    at: Timestamp | None = Field(default=None, description="When (confirmed, used)")
    url: str | None = Field(default=None, description="The alert's page in the inbox")


# --- the alert detail: its reports and its timeline ----------------------------------------------------------------


class EnterpriseView(BaseModel):
    name: str
    credit_code: str
    industry: str = Field(description="GB/T 4754 section, A-T")


class ArrearsView(BaseModel):
    amount_owed_cny: float = Field(description="Yuan")
    months_overdue: int
    employer_absconded: bool


class DisputeView(BaseModel):
    dispute_type: str
    stage: str


class StabilityView(BaseModel):
    event_type: str
    layoff_without_consultation: bool


class ReportDetail(BaseModel):
    """One report of the alert as the unit described it (no personal data: the contact never leaves intake) and
    how risk assessed it."""

    report_id: str
    kind: ReportKind
    occurred_at: Timestamp
    enterprise: EnterpriseView
    workers_involved: int
    migrant_workers_involved: int
    arrears: ArrearsView | None = Field(description="Wage arrears: amount owed and months")
    dispute: DisputeView | None = Field(description="Labour dispute: type and stage")
    stability: StabilityView | None = Field(description="Workforce stability: event type")
    collective_action: list[str]
    petition: str
    online_exposure: str | None
    extreme_threat: bool | None
    new_employment_form: bool | None
    summary: str
    level: RiskLevel
    score: int
    assessed_at: Timestamp
    reasons: list[Reason] = Field(description="Why the report scored what it did, in words, with points")


DeliveryResult = Literal["pending", "retrying", "delivered", "failed"]
TimelineType = Literal["opened", "joined", "level_raised", "notified", "delivery", "escalated", "acknowledged",
                       "resolved", "expired", "owner_named", "visit"]


class TimelineEntry(BaseModel):
    """One thing that happened to the alert; the fields beyond `at` and `type` depend on the type:
    opened/joined (report_id, level), level_raised (report_id, from_level, to_level), notified (body, reason),
    delivery (body, channel, result, attempts — never a target address or secret), escalated (body, from_level,
    to_level), acknowledged (body, person, note, level), resolved (body, outcome, note), expired (outcome, note),
    owner_named (body, person, title: the responsible leader named), visit (body, person, note, recorded_at; `at`
    is when the visit took place)."""

    at: Timestamp
    type: TimelineType
    report_id: str | None = None
    level: RiskLevel | None = None
    from_level: str | None = None
    to_level: str | None = None
    body_id: str | None = None
    body_name: str | None = None
    reason: str | None = Field(default=None, description="notified: routing, level_raised or escalation")
    channel: str | None = None
    result: DeliveryResult | None = None
    attempts: int | None = None
    person: str | None = None
    note: str | None = None
    outcome: str | None = None
    title: str | None = Field(default=None, description="owner_named: the leader's title")
    recorded_at: Timestamp | None = Field(default=None, description="visit: when it was recorded")


# --- alerts --------------------------------------------------------------------------------------------------------


class NotifiedView(BaseModel):
    body_id: str
    body_name: str
    at: Timestamp
    reason: str = Field(description="routing, level_raised or escalation")
    acknowledged: bool = Field(description="Whether the body has confirmed receipt at the alert's current level")


class EscalationView(BaseModel):
    body_id: str
    from_level: str | None
    to_level: str
    at: Timestamp


class DeliveryView(BaseModel):
    delivery_id: str
    body_id: str
    event: str
    channel: str
    state: DeliveryState
    attempts: int
    last_status: int | None
    last_error: str | None
    next_attempt_at: Timestamp | None = Field(description="While pending")
    delivered_at: Timestamp | None


# --- case ownership (包案) -------------------------------------------------------------------------------------------

def _one_line(value: str) -> str:
    if _CONTROL.search(value) or "\n" in value or "\t" in value:
        raise PydanticCustomError(
            "one_line", "不能含换行或控制字符 / must not contain line breaks or control characters")
    return value


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise PydanticCustomError("no_control", "不能含控制字符 / must not contain control characters")
    return value


# Whitespace around is dropped, so that a blank name or note is refused like a missing one.
PersonName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50),
                       AfterValidator(_one_line)]
PersonTitle = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50),
                        AfterValidator(_one_line)]
VisitNote = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000),
                      AfterValidator(_no_control)]


class OwnerAssign(BaseModel):
    """`POST /v1/alerts/{id}/owner`: the leader who takes the case in hand (包案领导) and their title."""

    model_config = ConfigDict(extra="forbid")

    person: PersonName
    title: PersonTitle = Field(description="e.g. 副主席 (vice-chair)")


class VisitRecord(BaseModel):
    """`POST /v1/alerts/{id}/visits`: a visit made on the case (带案下访): when, by whom, what came of it."""

    model_config = ConfigDict(extra="forbid")

    at: AwareDatetime = Field(description="When the visit took place (with its offset); not in the future")
    person: PersonName
    note: VisitNote


class OwnerView(BaseModel):
    """The alert's responsible leader, named by `body_id`."""

    person: str
    title: str
    body_id: str
    body_name: str
    at: Timestamp = Field(description="When they were named")


class VisitView(BaseModel):
    at: Timestamp = Field(description="When the visit took place")
    person: str
    note: str
    body_id: str
    body_name: str
    recorded_at: Timestamp


class OwnerNamedEntry(BaseModel):
    """A timeline entry: a responsible leader named (`replaces`: the one before, if any)."""

    at: Timestamp
    type: Literal["owner_named"] = "owner_named"
    person: str
    title: str
    body_id: str
    body_name: str
    replaces: OwnerView | None = None


class VisitEntry(BaseModel):
    """A timeline entry: a visit, at the time it took place."""

    at: Timestamp
    type: Literal["visit"] = "visit"
    person: str
    note: str
    body_id: str
    body_name: str
    recorded_at: Timestamp


CaseworkEntry = Annotated[OwnerNamedEntry | VisitEntry, Field(discriminator="type")]
"""An entry of an alert's timeline from its case log (`service.casework_timeline`)."""


class AlertView(BaseModel):
    """An alert as a body sees it in a list (and as webhooks carry it): no personal data.

    `ack_deadline` is the real acknowledgement deadline in working time (red and orange: clock hours; yellow: the
    same clock time on the next working day), `ack_deadline_rule` the rule that set it, with its words in
    `ack_deadline_rule_text`. With ACK_DEADLINE_SCALE ≠ 1 (tests, demos) the escalation timer fires earlier, after
    the scaled wait; that timer is the alert row's own (`alerts.ack_deadline`) and not shown here, so what a body
    reads is always the deadline it is held to.
    """

    alert_id: str
    credit_code: str
    kind: ReportKind
    level: RiskLevel
    state: AlertState
    report_ids: list[str]
    enterprise_name: str
    region_code: str
    score: int
    reasons: list[Reason]
    opened_at: Timestamp
    updated_at: Timestamp
    ack_deadline: Timestamp | None = Field(description="While open: the deadline in working time")
    ack_deadline_rule: DeadlineRule | None = Field(
        default=None, description="While open: what set the deadline (clock_hours, next_working_day, or "
        "next_working_day_weekends_only when the official calendar does not cover the year)")
    ack_deadline_rule_text: str | None = Field(
        default=None, description="The rule in words: `中文 / English` (in a webhook, in the body's language)")
    acknowledged_at: Timestamp | None
    resolved_at: Timestamp | None
    outcome: str | None
    note: str | None
    notified: list[NotifiedView]
    escalations: list[EscalationView]
    owner: OwnerView | None = Field(default=None, description="The responsible leader (包案领导), if named")
    visits: list[VisitView] = Field(default_factory=list, description="Visits recorded, earliest first")


class AlertDetail(AlertView):
    """One alert with its deliveries (`GET /v1/alerts/{id}`, and the answer to acknowledge and resolve)."""

    url: str = Field(description="The alert's page in the inbox")
    reports: list[ReportDetail] = Field(description="The alert's reports, in the order they joined it")
    acknowledgements: list[AcknowledgementView] = Field(description="Each body's confirmations of receipt, oldest "
                                                        "first")
    timeline: list[TimelineEntry] = Field(description="What happened to the alert, oldest first")
    deliveries: list[DeliveryView]


class WebhookAlert(AlertView):
    """The alert inside a webhook: with the link to the inbox and the body's one-click receipt link."""

    inbox_url: str
    url: str = Field(description="The alert's page in the inbox")
    receipt_url: str | None = Field(description="Signed, single-use link with which the receiving body confirms "
                                    "receipt (asks only for the person's name); expires when the alert is resolved")


class AlertPage(BaseModel):
    items: list[AlertView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page (same filters); None at the end")
    server_time: Timestamp = Field(
        description="Send it back as `changed_since` on the next poll to get only alerts changed since this answer "
                    "(it lies a little before the answer, so a change committed meanwhile is not missed)")


class Resolution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Outcome
    note: Annotated[str, Field(min_length=1, max_length=2000)]


class AssessmentView(BaseModel):
    """The assessment behind the alert's current level."""

    report_id: str
    score: int
    level: RiskLevel
    rubric_version: str
    assessed_at: str
    reasons: list[Reason]


class WebhookMessage(BaseModel):
    """The notification as text, in the body's language (what e-mail and the robots send)."""

    title: str
    markdown: str


class WebhookPayload(BaseModel):
    """The JSON body of every delivery (signed for webhooks; rendered to text for e-mail and robots). Its words
    (`message`, `alert.ack_deadline_rule_text`) are in the receiving body's `language`."""

    event: str = Field(description="alert.opened, alert.level_raised or alert.escalated")
    language: MessageLanguage = Field(default=DEFAULT_LANGUAGE, description=LANGUAGE_DESCRIPTION)
    alert: WebhookAlert
    report: dict[str, Any] = Field(description="The report behind the alert's current level (no personal data)")
    assessment: AssessmentView
    message: WebhookMessage | None = Field(default=None, description="The notification as text, in `language`")



# --- inbox filters, situation, watch list --------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertFilters:
    """The filters of `GET /v1/alerts` and `GET /v1/alerts/export.csv`. `region_code` covers the divisions below
    it (a city its counties, a province all); `q` is a case-insensitive substring of the enterprise name or the
    credit code; `since`/`until` bound `opened_at` ([since, until)); `changed_since` keeps alerts whose
    `updated_at` is after it."""

    level: RiskLevel | None = None
    kind: ReportKind | None = None
    state: AlertState | None = None
    region_code: str | None = None
    q: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    changed_since: datetime | None = None
    has_owner: bool | None = None


class LevelCounts(BaseModel):
    """Assessed reports by the level they were assessed at."""

    red: int = 0
    orange: int = 0
    yellow: int = 0
    blue: int = 0
    none: int = 0


class OpenAlertCounts(BaseModel):
    """Alerts not yet resolved (open or acknowledged), by their current level."""

    red: int = 0
    orange: int = 0
    yellow: int = 0


class SituationRegion(BaseModel):
    region_code: str
    name_zh: str
    name_en: str
    reports: LevelCounts
    open_alerts: OpenAlertCounts


class SituationCounty(SituationRegion):
    city_code: str


class SituationWeek(BaseModel):
    week_start: date = Field(description="The Monday (Asia/Shanghai) the week starts on")
    reports: LevelCounts


class SituationIndustry(BaseModel):
    industry: str = Field(description="GB/T 4754 section, A-T")
    name_zh: str
    name_en: str
    reports: LevelCounts
    open_alerts: OpenAlertCounts


class Situation(BaseModel):
    """`GET /v1/situation`: reports that occurred in [since, until) by level, and the alerts open now by level, per
    city, per county, per week and per industry, within `region_code`."""

    since: Timestamp
    until: Timestamp
    region_code: str
    cities: list[SituationRegion]
    counties: list[SituationCounty]
    weekly: list[SituationWeek]
    industries: list[SituationIndustry]


class WatchedEnterpriseView(BaseModel):
    """An enterprise with blue (关注 / watch) reports in the period: what its latest report said and how many."""

    credit_code: str
    enterprise_name: str = Field(description="As its latest blue report names it")
    region_code: str = Field(description="Of its latest blue report")
    region_label: str = Field(description="`中文 / English`, with the city before a county")
    reports: int = Field(description="Blue reports in the period")
    latest_occurred_at: Timestamp
    latest_score: int
    kinds: list[ReportKind]


class WatchlistPage(BaseModel):
    region_code: str | None = Field(description="The region covered; None: all (admin)")
    since: Timestamp
    items: list[WatchedEnterpriseView]
    next_cursor: str | None


class RegionName(BaseModel):
    code: str
    name_zh: str
    name_en: str


class RegionCity(RegionName):
    counties: list[RegionName]


class RegionLists(BaseModel):
    """`GET /v1/regions`: Jiangsu's cities and their counties, and the names of the provinces (GB/T 2260)."""

    province: RegionName
    cities: list[RegionCity]
    provinces: list[RegionName]
    source: str = Field(description="Where the division list comes from")


# --- screening coverage (常态化排查) --------------------------------------------------------------------------------

RoundState = Literal["upcoming", "open", "closed"]


class ScreeningUnitView(BaseModel):
    unit_id: str
    name: str


class ScreeningNoticeView(BaseModel):
    """The one notice sent when the round came due: when, and to which federation (None: no union covers)."""

    at: Timestamp
    body_id: str | None
    body_name: str | None


class CountyCoverage(BaseModel):
    """One county of a round: who answered, how, and who has not (after the due date: the final figures)."""

    county: str
    county_name: str = Field(description="中文 / English")
    expected: int
    answered: int
    no_risk: int
    risks_reported: int
    missing: list[ScreeningUnitView]
    closed: bool = Field(description="The round came due for this county (its figures are final)")
    notice: ScreeningNoticeView | None


class RoundCoverage(BaseModel):
    """A round over the counties the caller may see, with its totals over those counties."""

    round_id: str
    name: str
    region_code: str
    opens_at: Timestamp
    due_at: Timestamp
    state: RoundState
    expected: int
    answered: int
    no_risk: int
    risks_reported: int
    counties: list[CountyCoverage]


class CoveragePage(BaseModel):
    rounds: list[RoundCoverage] = Field(description="Latest due date first")


class NoticeRound(BaseModel):
    round_id: str
    name: str
    region_code: str
    opens_at: Timestamp
    due_at: Timestamp


class NoticeCounty(RegionName):
    """The county a screening notice is about."""


class ScreeningNoticePayload(BaseModel):
    """The JSON body of the due notice of a screening round (webhook event `screening.round_due`; rendered to text
    for e-mail and robots): the county's final figures and the units that did not answer. Sent once."""

    event: Literal["screening.round_due"] = "screening.round_due"
    notice_id: str = Field(description="'<round_id>/<county>': the same on every delivery of this notice")
    round: NoticeRound
    county: NoticeCounty
    expected: int
    answered: int
    no_risk: int
    risks_reported: int
    missing: list[ScreeningUnitView]
    inbox_url: str
