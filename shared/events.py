"""Versioned event models: the only things that travel between services.

Every event carries the envelope fields (`event_id`, `event_type`, `schema_version`, `occurred_at`, `trace_id`);
`trace_id` is the id of the report that started the chain. Producers and consumers import these same classes.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, TypeAdapter

from shared.report import Report, ReportKind

SCHEMA_VERSION = 1


class Topic(StrEnum):
    reports = "reports.v1"
    assessments = "assessments.v1"
    alerts = "alerts.v1"

    @property
    def dlq(self) -> str:
        return f"{self.value}.dlq"


def topic_name(topic: Topic | str, prefix: str = "") -> str:
    """The concrete topic name: an optional deployment prefix (to share one cluster) plus the contract name."""
    return f"{prefix}{topic}"


def utcnow() -> datetime:
    return datetime.now(UTC)


class RiskLevel(StrEnum):
    red = "red"
    orange = "orange"
    yellow = "yellow"
    blue = "blue"
    none = "none"

    @property
    def rank(self) -> int:
        return _LEVEL_RANK[self]

    @property
    def alerts(self) -> bool:
        """Whether this level opens an alert (red, orange, yellow) rather than only being recorded."""
        return self.rank >= RiskLevel.yellow.rank


_LEVEL_RANK = {RiskLevel.none: 0, RiskLevel.blue: 1, RiskLevel.yellow: 2, RiskLevel.orange: 3, RiskLevel.red: 4}


class EventBase(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    schema_version: int = SCHEMA_VERSION
    occurred_at: AwareDatetime = Field(default_factory=utcnow)
    trace_id: str = Field(description="The report id that started the chain")

    @property
    def key(self) -> str:
        """Kafka message key: the enterprise's credit code, so one enterprise stays in order."""
        raise NotImplementedError


class ReportAccepted(EventBase):
    """Intake accepted a report (topic reports.v1). `contact` is never part of it."""

    event_type: Literal["report.accepted"] = "report.accepted"
    report_id: str
    unit_id: str
    accepted_at: AwareDatetime
    report: Report

    @property
    def key(self) -> str:
        return self.report.enterprise.credit_code


class Reason(BaseModel):
    """Why points were given: a criterion or floor id, the points and a short zh/en text."""

    model_config = ConfigDict(frozen=True)

    criterion: str
    points: int
    text_zh: str
    text_en: str


class ReportAssessed(EventBase):
    """Risk scored a report (topic assessments.v1). Carries the report so alerts needs no other source."""

    event_type: Literal["report.assessed"] = "report.assessed"
    report_id: str
    accepted_at: AwareDatetime
    report: Report
    score: Annotated[int, Field(ge=0, le=100)]
    level: RiskLevel
    rubric_version: str
    reasons: list[Reason]
    assessed_at: AwareDatetime
    ack_deadline_seconds: int | None = Field(
        default=None, description="The rubric's acknowledgement deadline for this level; None when it opens no alert"
    )
    replay: bool = Field(default=False, description="True when produced by a re-score with another rubric")

    @property
    def key(self) -> str:
        return self.report.enterprise.credit_code


AlertEventType = Literal[
    "alert.opened", "alert.level_raised", "alert.escalated", "alert.acknowledged", "alert.resolved"
]


class AlertState(StrEnum):
    open = "open"
    acknowledged = "acknowledged"
    resolved = "resolved"


class AlertChanged(EventBase):
    """A step in an alert's lifecycle (topic alerts.v1)."""

    event_type: AlertEventType
    alert_id: str
    credit_code: str
    kind: ReportKind
    level: RiskLevel
    state: AlertState
    report_ids: list[str]
    report_id: str | None = Field(default=None, description="The report that caused this change, if any")
    body_ids: list[str] = Field(default_factory=list, description="Bodies notified by this change")

    @property
    def key(self) -> str:
        return self.credit_code


Event = Annotated[ReportAccepted | ReportAssessed | AlertChanged, Field(discriminator="event_type")]
event_adapter: TypeAdapter[ReportAccepted | ReportAssessed | AlertChanged] = TypeAdapter(Event)


def parse_event(raw: bytes) -> ReportAccepted | ReportAssessed | AlertChanged:
    """Parse a Kafka message value into its event model; raises pydantic.ValidationError when malformed."""
    return event_adapter.validate_json(raw)
