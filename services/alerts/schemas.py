"""Request and response models of the alerts API and the webhook payload (the input of the e-mail/robot messages,
`MessageInput`, is defined beside the texts in `messages.py` and exported here too).

"Body" here always means an organisation (a union federation, a mediation centre...); request bodies are called
payloads.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from services.alerts.channels import ChannelConfig
from services.alerts.messages import MessageInput as MessageInput  # re-exported: the messages' input
from services.alerts.models import DeliveryState
from services.alerts.routing import BodyKind, BodyLevel
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


class BodyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    kind: BodyKind
    level: BodyLevel
    region_code: str
    channels: Annotated[list[ChannelConfig], Field(min_length=1, max_length=10)]

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


class BodyCreated(BaseModel):
    body_id: str
    token: str = Field(description="Shown once: the body signs in to the inbox and the API with it")


class BodyView(BaseModel):
    body_id: str
    name: str
    kind: str
    level: str
    region_code: str
    channels: list[dict[str, Any]] = Field(description="Channel types and targets; secrets are never shown")
    active: bool
    created_at: datetime


# --- alerts --------------------------------------------------------------------------------------------------------


class NotifiedView(BaseModel):
    body_id: str
    at: Timestamp
    reason: str = Field(description="routing, level_raised or escalation")


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


class AlertView(BaseModel):
    """An alert as a body sees it in a list (and as webhooks carry it): no personal data."""

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
    ack_deadline: Timestamp | None = Field(description="While open")
    acknowledged_at: Timestamp | None
    resolved_at: Timestamp | None
    outcome: str | None
    note: str | None
    notified: list[NotifiedView]
    escalations: list[EscalationView]


class AlertDetail(AlertView):
    """One alert with its deliveries (`GET /v1/alerts/{id}`, and the answer to acknowledge and resolve)."""

    deliveries: list[DeliveryView]


class WebhookAlert(AlertView):
    """The alert inside a webhook: with the link to the inbox."""

    inbox_url: str


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


class WebhookPayload(BaseModel):
    """The JSON body of every delivery (signed for webhooks; rendered to text for e-mail and robots)."""

    event: str = Field(description="alert.opened, alert.level_raised or alert.escalated")
    alert: WebhookAlert
    report: dict[str, Any] = Field(description="The report behind the alert's current level (no personal data)")
    assessment: AssessmentView



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
