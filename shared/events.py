"""Versioned event models: the only things that travel between services.

Every event carries the envelope fields (`event_id`, `event_type`, `schema_version`, `occurred_at`, `trace_id`);
`trace_id` is the id of the report that started the chain (for screening events: the round id). Producers and
consumers import these same classes.

Topics: `reports.v1` (ReportAccepted), `assessments.v1` (ReportAssessed), `alerts.v1` (AlertChanged), and
`screening.v1` (ScreeningRoundOpened, ScreeningReturnSubmitted, ScreeningRoundDue: routine screening rounds with
zero reports, written by intake through its outbox). Each has a `.dlq` topic beside it.
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
    screening = "screening.v1"

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
    "alert.opened", "alert.level_raised", "alert.escalated", "alert.acknowledged", "alert.resolved",
    # Case ownership (包案): the alert's state does not change; the event carries it as it is.
    "alert.owner_named", "alert.visit_recorded",
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


class ScreeningStatus(StrEnum):
    """A unit's answer to a screening round: nothing found (零报告), or risks found and reported."""

    no_risk = "no_risk"
    risks_reported = "risks_reported"


class ScreeningUnit(BaseModel):
    """A grassroots unit of a screening round: its id and name, as registered when the round was created (a unit's
    name is not personal data)."""

    model_config = ConfigDict(frozen=True)

    unit_id: str
    name: str


class ScreeningEventBase(EventBase):
    """What every `screening.v1` event carries: the round and the ONE county the event is about.

    A round covers a province, a city or a county; its events are split by county, so that each county federation
    gets its own (and no message grows with the size of a province). The Kafka key is the county's code: all events
    of one county, round after round, stay in order. `trace_id` is the round id.
    """

    round_id: str
    round_name: str
    round_region_code: str = Field(description="The round's region: a province, city or county code")
    county: str = Field(description="The six-digit county code this event is about")
    opens_at: AwareDatetime
    due_at: AwareDatetime

    @property
    def key(self) -> str:
        return self.county


class ScreeningRoundOpened(ScreeningEventBase):
    """A screening round was created (topic screening.v1), one event per county of the round: the units of this
    county expected to answer, snapshotted at creation. A round of n counties has `county_count` = n such events;
    together they list `round_expected` units."""

    event_type: Literal["screening.round_opened"] = "screening.round_opened"
    round_expected: int = Field(ge=1, description="Units expected to answer in the whole round")
    county_count: int = Field(ge=1, description="How many counties (hence round_opened events) the round has")
    expected: int = Field(ge=1, description="Units of this county expected to answer")
    units: list[ScreeningUnit]


class ScreeningReturnSubmitted(ScreeningEventBase):
    """A unit answered a round (topic screening.v1). A unit may answer again until `due_at`: the answer with the
    highest `revision` for a (round_id, unit_id) is the one in force. The unit's free-text note is not carried."""

    event_type: Literal["screening.return_submitted"] = "screening.return_submitted"
    unit_id: str
    unit_name: str
    status: ScreeningStatus
    report_ids: list[str] = Field(description="The unit's own reports it linked (empty for no_risk)")
    report_count: int = Field(ge=0)
    revision: int = Field(ge=1, description="1 for the first answer, +1 each time the unit replaces it")
    submitted_at: AwareDatetime


class ScreeningRoundDue(ScreeningEventBase):
    """A round reached `due_at` (topic screening.v1), one event per county of the round, emitted exactly once:
    the county's final coverage and the units that did not answer (`missing`, empty when all did)."""

    event_type: Literal["screening.round_due"] = "screening.round_due"
    expected: int = Field(ge=1)
    answered: int = Field(ge=0)
    no_risk: int = Field(ge=0)
    risks_reported: int = Field(ge=0)
    missing: list[ScreeningUnit]


ScreeningEvent = ScreeningRoundOpened | ScreeningReturnSubmitted | ScreeningRoundDue
AnyEvent = ReportAccepted | ReportAssessed | AlertChanged | ScreeningEvent

Event = Annotated[
    ReportAccepted | ReportAssessed | AlertChanged | ScreeningRoundOpened | ScreeningReturnSubmitted
    | ScreeningRoundDue,
    Field(discriminator="event_type"),
]
event_adapter: TypeAdapter[AnyEvent] = TypeAdapter(Event)


def parse_event(raw: bytes) -> AnyEvent:
    """Parse a Kafka message value into its event model; raises pydantic.ValidationError when malformed."""
    return event_adapter.validate_json(raw)
