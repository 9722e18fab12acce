"""Tables of the alerts schema: bodies, alerts, who was notified, the delivery queue, escalations, the
consumed-event ledger (dedup by event id), the outbox of `alerts.v1` events, and screening coverage (the rounds
and answers heard on `screening.v1`)."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Computed,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    func,
    literal_column,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.outbox import OutboxMixin

SCHEMA = "alerts"


class DeliveryState(StrEnum):
    """Where one delivery stands: waiting (or retrying), delivered, failed (refused for good by the receiver, or
    given up after the retry window), or cancelled (its body was deactivated or no longer has the channel)."""

    pending = "pending"
    delivered = "delivered"
    failed = "failed"
    cancelled = "cancelled"


class DeliveryKind(StrEnum):
    """What a delivery carries: a change of an alert, or a notice that belongs to no alert (a screening round that
    came due, sent to the county federation)."""

    alert = "alert"
    screening_notice = "screening_notice"


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class Body(Base):
    """A union federation, mediation centre, arbitration commission, labour inspectorate or legal aid centre."""

    __tablename__ = "bodies"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(16))
    region_code: Mapped[str] = mapped_column(String(6))
    channels: Mapped[list[dict[str, Any]]] = mapped_column(JSONB)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    language: Mapped[str] = mapped_column(String(8), default="zh-en", server_default="zh-en",
                                          comment="zh, en or zh-en: the language of its messages and inbox")


LEVEL_ORDER_SQL = ("CASE level WHEN 'red' THEN 0 WHEN 'orange' THEN 1 WHEN 'yellow' THEN 2 WHEN 'blue' THEN 3 "
                   "ELSE 4 END")
CITY_CODE_SQL = "substr(region_code, 1, 4) || '00'"
INDUSTRY_SQL = "report -> 'enterprise' ->> 'industry'"
SEARCH_BIGRAMS = "alerts.search_bigrams"
"""An immutable SQL function (created by migration 20261127_lists02): the distinct lower-cased two-character
substrings of a text. A GIN index on the bigrams of `enterprise_name || ' ' || credit_code` finds substrings of
Chinese names and of codes alike (pg_trgm extracts no trigram from Chinese on a cluster with the C locale)."""


class Alert(Base):
    """One alert per (credit_code, kind) while unresolved. `ack_deadline` is the escalation timer: a row with a
    due time that the escalation worker picks up, so a restart loses no timer. It is the working-time deadline
    `ack_deadline_working` with the wait scaled by ACK_DEADLINE_SCALE (the same moment at scale 1);
    `ack_deadline_rule` names what set the deadline (`working_time.AckDeadline.rule`)."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("uq_alerts_one_unresolved", "credit_code", "kind", unique=True,
              postgresql_where=text("state <> 'resolved'")),
        Index("ix_alerts_due", "ack_deadline", postgresql_where=text("state = 'open' AND NOT escalation_exhausted")),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    credit_code: Mapped[str] = mapped_column(String(18))
    kind: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(8))
    state: Mapped[str] = mapped_column(String(16))
    report_ids: Mapped[list[str]] = mapped_column(JSONB)
    trace_id: Mapped[str] = mapped_column(String(64))
    enterprise_name: Mapped[str] = mapped_column(String(200))
    region_code: Mapped[str] = mapped_column(String(6))
    score: Mapped[int] = mapped_column(Integer)
    report: Mapped[dict[str, Any]] = mapped_column(JSONB, comment="the report behind the current level")
    assessment: Mapped[dict[str, Any]] = mapped_column(JSONB, comment="its assessment (score, level, reasons)")
    first_accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    deadline_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True, comment="rubric's, unscaled")
    ack_deadline: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ack_deadline_working: Mapped[datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True, comment="the deadline in working time, unscaled: the one shown")
    ack_deadline_rule: Mapped[str | None] = mapped_column(
        String(32), nullable=True, comment="clock_hours, next_working_day or next_working_day_weekends_only")
    escalation_exhausted: Mapped[bool] = mapped_column(Boolean, default=False)
    highest_union_level: Mapped[str | None] = mapped_column(String(16), nullable=True)
    acknowledged_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    resolved_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(16), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    first_delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Case ownership (包案). Kept on the alert row, not in tables of their own, so that reading alerts (a page, a
    # detail, a webhook payload) costs no extra query: the current responsible leader, and the case log of every
    # naming (replacements included) and every visit, in the order they were recorded.
    owner: Mapped[dict[str, Any] | None] = mapped_column(
        JSONB(none_as_null=True), nullable=True, comment="the responsible leader now: person, title, body, at")
    casework: Mapped[list[dict[str, Any]]] = mapped_column(
        JSONB, default=list, server_default=text("'[]'::jsonb"), comment="owner namings and visits, as recorded")
    # Generated by PostgreSQL for the inbox lists, the export and the situation counts (see LIST_INDEXES).
    level_order: Mapped[int] = mapped_column(SmallInteger, Computed(LEVEL_ORDER_SQL, persisted=True),
                                             comment="0 red, 1 orange, 2 yellow, 3 blue, 4 none: the list order")
    city_code: Mapped[str] = mapped_column(String(6), Computed(CITY_CODE_SQL, persisted=True))
    industry: Mapped[str | None] = mapped_column(String(1), Computed(INDUSTRY_SQL, persisted=True))


class InboxEntry(Base):
    """One row per (body, alert) the body was notified of, with the alert's list order and state: the indexed path
    of a body's inbox (most severe first, then oldest first, for one body, straight from an index). Kept by
    PostgreSQL triggers (migration 20261127_lists03): a new notification adds the row, a change of an alert's level,
    state or opening time updates its rows. The services never write it."""

    __tablename__ = "inbox_entries"
    __table_args__ = (
        Index("ix_inbox_entries_order", "body_id", "level_order", "opened_at", "alert_id"),
        Index("ix_inbox_entries_state_order", "body_id", "state", "level_order", "opened_at", "alert_id"),
        Index("ix_inbox_entries_alert", "alert_id"),
    )

    body_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"), primary_key=True)
    level_order: Mapped[int] = mapped_column(SmallInteger)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    state: Mapped[str] = mapped_column(String(16))


def alert_search_text() -> Any:
    """The expression the alerts' search index is built on (and queries must spell the same way)."""
    return func.alerts.search_bigrams(
        Alert.enterprise_name.op("||")(literal_column("' '")).op("||")(Alert.credit_code))


LIST_INDEXES = (
    # The inbox order (most severe first, then oldest first) and its keyset cursor, with each equality filter
    # in front of it: admin's whole list, a state, a kind, a county, a city.
    Index("ix_alerts_list", Alert.level_order, Alert.opened_at, Alert.id),
    Index("ix_alerts_list_state", Alert.state, Alert.level_order, Alert.opened_at, Alert.id),
    Index("ix_alerts_list_kind", Alert.kind, Alert.level_order, Alert.opened_at, Alert.id),
    Index("ix_alerts_list_county", Alert.region_code, Alert.level_order, Alert.opened_at, Alert.id),
    Index("ix_alerts_list_city", Alert.city_code, Alert.level_order, Alert.opened_at, Alert.id),
    Index("ix_alerts_opened", Alert.opened_at),
    Index("ix_alerts_updated", Alert.updated_at),  # changed_since: the page's cheap poll
    Index("ix_alerts_search", alert_search_text(), postgresql_using="gin"),
    # Open (unresolved) alerts counted by region, level and industry for the situation: an index-only scan.
    Index("ix_alerts_unresolved_counts", Alert.region_code, Alert.level, Alert.industry,
          postgresql_where=text("state <> 'resolved'")),
)


class Notification(Base):
    """A body told about an alert, and why (routing, level_raised, escalation)."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_body", "body_id", "alert_id"),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"), index=True)
    body_id: Mapped[str] = mapped_column(ForeignKey("bodies.id"))
    reason: Mapped[str] = mapped_column(String(16))
    event_type: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Delivery(Base):
    """One message to one channel of one body: a durable queue row worked by the delivery worker."""

    __tablename__ = "deliveries"
    __table_args__ = (
        Index("ix_deliveries_due", "next_attempt_at", postgresql_where=text("state = 'pending'")),
        Index("ix_deliveries_subject", "subject", postgresql_where=text("subject IS NOT NULL")),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, comment="X-Delivery-Id, stable across retries")
    alert_id: Mapped[str | None] = mapped_column(ForeignKey("alerts.id"), index=True, nullable=True,
                                                 comment="None for a notice that belongs to no alert")
    kind: Mapped[str] = mapped_column(String(24), default=DeliveryKind.alert.value,
                                      server_default=DeliveryKind.alert.value)
    subject: Mapped[str | None] = mapped_column(String(80), nullable=True,
                                                comment="what a notice is about: '<round_id>/<county>'")
    body_id: Mapped[str] = mapped_column(ForeignKey("bodies.id"))
    event_type: Mapped[str] = mapped_column(String(32))
    channel_type: Mapped[str] = mapped_column(String(16))
    # Kept without its secret, as a record: every send reads the body's channel as it is then (see channel_index).
    channel: Mapped[dict[str, Any]] = mapped_column(JSONB, comment="the channel as configured when queued")
    channel_index: Mapped[int | None] = mapped_column(Integer, nullable=True,
                                                      comment="position of the channel in the body's channels")
    payload: Mapped[str] = mapped_column(Text, comment="the exact JSON body, the same on every retry")
    state: Mapped[str] = mapped_column(String(16), default=DeliveryState.pending.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    next_attempt_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_attempt_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Escalation(Base):
    __tablename__ = "escalations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"), index=True)
    body_id: Mapped[str] = mapped_column(ForeignKey("bodies.id"))
    from_level: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_level: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class Acknowledgement(Base):
    """A notified body's confirmation of receipt: who (the officer's name) and an optional note. One per body for
    each level the alert reaches: a level raise asks every body again, a repeat at the same level is refused by the
    unique key (the first receipt stands)."""

    __tablename__ = "acknowledgements"
    __table_args__ = (Index("uq_acknowledgements_alert_body_level", "alert_id", "body_id", "level", unique=True),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"))
    body_id: Mapped[str] = mapped_column(ForeignKey("bodies.id"))
    level: Mapped[str] = mapped_column(String(8), comment="the alert's level when the body confirmed")
    person: Mapped[str] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    via: Mapped[str] = mapped_column(String(8), comment="api (the inbox or a client) or link (the receipt link)")
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ProcessedEvent(Base):
    """Events already handled: a redelivered `report.assessed` changes nothing."""

    __tablename__ = "processed_events"

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AssessedReport(Base):
    """Every assessed report the alerts consumer saw on `assessments.v1` (all levels, blue and none included; re-score
    replays excluded), one row per report: what the alert detail, the situation counts and the watch list read.
    No personal data: the topic carries none."""

    __tablename__ = "assessed_reports"
    __table_args__ = (
        # The situation counts read only (region, level, industry) of a period: index-only scans for a county, a
        # city and the whole province.
        Index("ix_assessed_reports_region_occurred", "region_code", "occurred_at",
              postgresql_include=["level", "industry"]),
        Index("ix_assessed_reports_city_occurred", "city_code", "occurred_at",
              postgresql_include=["region_code", "level", "industry"]),
        Index("ix_assessed_reports_occurred", "occurred_at",
              postgresql_include=["region_code", "level", "industry"]),
        Index("ix_assessed_reports_blue", "region_code", "occurred_at", postgresql_where=text("level = 'blue'")),
        Index("ix_assessed_reports_enterprise", "credit_code", "kind", "occurred_at"),
    )

    report_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    credit_code: Mapped[str] = mapped_column(String(18))
    enterprise_name: Mapped[str] = mapped_column(String(200))
    industry: Mapped[str] = mapped_column(String(1), comment="GB/T 4754 section, A-T")
    kind: Mapped[str] = mapped_column(String(16))
    region_code: Mapped[str] = mapped_column(String(6), comment="county-level code")
    city_code: Mapped[str] = mapped_column(String(6), comment="first four digits of region_code + '00'")
    level: Mapped[str] = mapped_column(String(8))
    score: Mapped[int] = mapped_column(Integer)
    rubric_version: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    accepted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    assessed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    workers_involved: Mapped[int] = mapped_column(Integer)
    migrant_workers_involved: Mapped[int] = mapped_column(Integer)
    details: Mapped[dict[str, Any]] = mapped_column(
        JSONB, comment="the kind block (arrears/dispute/stability) and collective_action, petition, online_exposure, "
                       "new_employment_form, extreme_threat, ownership, summary")
    reasons: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, comment="criterion, points, text_zh, text_en")


class OutboxMessage(OutboxMixin, Base):
    """`alerts.v1` events written with the change they describe, published by the relay."""

    __tablename__ = "outbox"
    __outbox_index__ = "ix_alerts_outbox_unsent"


# --- screening coverage (常态化排查), heard on screening.v1 ---------------------------------------------------------


class ScreeningCoverage(Base):
    """One county of one screening round, as the alerts service heard it: who is expected to answer (from
    `screening.round_opened`), the county's final figures once the round came due (`screening.round_due`), and the
    one notice sent to the county federation then. `notice_at` is set in the transaction that queues the notice's
    deliveries, so the notice goes out once however often the due event arrives."""

    __tablename__ = "screening_coverage"
    __table_args__ = (Index("ix_screening_coverage_window", "opens_at", "due_at"),
                      Index("ix_screening_coverage_county", "county"))

    round_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    county: Mapped[str] = mapped_column(String(6), primary_key=True)
    round_name: Mapped[str] = mapped_column(String(200))
    round_region_code: Mapped[str] = mapped_column(String(6))
    opens_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    due_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    expected: Mapped[int] = mapped_column(Integer, default=0, comment="0 until round_opened is heard")
    units: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, default=list, comment="expected units: unit_id, name")
    due_received_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    final: Mapped[dict[str, Any] | None] = mapped_column(
        JSONB(none_as_null=True), nullable=True, comment="the due event's figures and missing units")
    notice_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    notice_body_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ScreeningAnswer(Base):
    """A unit's answer in force for a round: the highest revision heard (a lower one arriving late changes
    nothing)."""

    __tablename__ = "screening_answers"
    __table_args__ = (Index("ix_screening_answers_county", "round_id", "county"),)

    round_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    unit_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    county: Mapped[str] = mapped_column(String(6))
    unit_name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    report_count: Mapped[int] = mapped_column(Integer)
    revision: Mapped[int] = mapped_column(Integer)
    submitted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


# --- rollups of assessed reports (situation counts, watch list) ------------------------------------------------------
# Maintained by the statement-level trigger `assessed_reports_rollup` (migration 20261127_situation01): every INSERT
# into assessed_reports adds its rows' counts in one grouped upsert per table, whoever inserts. Only inserted rows
# are counted (a redelivery's `ON CONFLICT DO NOTHING` row is not in the transition table); assessed reports are
# never updated or deleted.

ROLLUP_TIME_ZONE = "Asia/Shanghai"
"""Days and weeks (Monday start) of the rollups are those of this zone, as the situation page shows them."""


ROLLUP_LEVELS = ("red", "orange", "yellow", "blue", "none")
"""The levels counted, one column `n_<level>` each: a period of an area is one row (five times fewer rows to read
than a row per level). A report of any other level is not counted (the situation shows these five)."""


class _LevelColumns:
    n_red: Mapped[int] = mapped_column(BigInteger, default=0)
    n_orange: Mapped[int] = mapped_column(BigInteger, default=0)
    n_yellow: Mapped[int] = mapped_column(BigInteger, default=0)
    n_blue: Mapped[int] = mapped_column(BigInteger, default=0)
    n_none: Mapped[int] = mapped_column(BigInteger, default=0)


class ReportCountRollup(_LevelColumns, Base):
    """How many assessed reports occurred per (area, day or week), by level. `area` is a report's county code, its
    city's code and its province's code (one row each, so a city or the province is one row, not a sum); `grain`
    'd' counts a day (`period` the day), 'w' a week (`period` its Monday), both in Asia/Shanghai."""

    __tablename__ = "report_counts"

    area: Mapped[str] = mapped_column(String(6), primary_key=True)
    grain: Mapped[str] = mapped_column(String(1), primary_key=True, comment="d: a day, w: a week from Monday")
    period: Mapped[date] = mapped_column(Date, primary_key=True)


class IndustryReportCountRollup(_LevelColumns, Base):
    """`ReportCountRollup` split by industry (GB/T 4754 section): the situation's table by industry."""

    __tablename__ = "report_counts_by_industry"

    area: Mapped[str] = mapped_column(String(6), primary_key=True)
    grain: Mapped[str] = mapped_column(String(1), primary_key=True)
    period: Mapped[date] = mapped_column(Date, primary_key=True)
    industry: Mapped[str] = mapped_column(String(1), primary_key=True)


class WatchedEnterpriseRollup(Base):
    """The latest blue (关注 / watch) report of each enterprise in each county: the watch list pages these rows by
    (latest_occurred_at, credit_code), newest first, instead of grouping every blue report of the period."""

    __tablename__ = "watched_enterprises"
    __table_args__ = (
        Index("ix_watched_enterprises_latest", "latest_occurred_at", "credit_code"),
        Index("ix_watched_enterprises_county", "region_code", "latest_occurred_at", "credit_code"),
        Index("ix_watched_enterprises_city", "city_code", "latest_occurred_at", "credit_code"),
    )

    credit_code: Mapped[str] = mapped_column(String(18), primary_key=True)
    region_code: Mapped[str] = mapped_column(String(6), primary_key=True)
    city_code: Mapped[str] = mapped_column(String(6))
    latest_occurred_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    latest_report_id: Mapped[str] = mapped_column(String(64), comment="ties on the time go to the greater report id")
    enterprise_name: Mapped[str] = mapped_column(String(200))
    score: Mapped[int] = mapped_column(Integer)


# The watch list's counts and kinds for the enterprises of one page: an index-only probe per credit code.
Index("ix_assessed_reports_blue_enterprise", AssessedReport.credit_code, AssessedReport.occurred_at,
      postgresql_include=["kind", "region_code", "city_code"], postgresql_where=text("level = 'blue'"))
