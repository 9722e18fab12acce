"""Request and response models of the alerts API and the webhook payload (the input of the e-mail/robot messages,
`MessageInput`, is defined beside the texts in `messages.py` and exported here too).

"Body" here always means an organisation (a union federation, a mediation centre...); request bodies are called
payloads.
"""

from __future__ import annotations

from datetime import datetime
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
    next_cursor: str | None


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

