"""The alert lifecycle as pure decisions: given an alert's state and an event, what happens next.

No database, no clock, no I/O: each function takes the alert's state (`AlertSnapshot`, not the ORM row), the event
(an assessment, an acknowledgement, a resolution, a deadline passing) and what it needs (the covering bodies, now,
the policy), and returns a decision that `service.py` applies through the repository.

Rules (TASK7.md "Alert lifecycle, dedup and escalation" and "Bodies and routing"):
- at most one unresolved alert per (credit_code, kind); a report within the join window (7 days) of the alert's
  last update joins it; after the window the old alert is closed as `expired` and the report opens a new one;
- the alert's level is the highest of its reports; a joining report that raises it notifies every target of the
  new level, those notified before included, and re-arms the acknowledgement deadline; otherwise nobody hears;
- blue and none reports join an open alert silently and never open one;
- escalation goes to the union body one level above the highest union level notified so far
  (county → city → province; levels without a body are skipped), restarts the deadline; none above province;
- acknowledgement deadlines are in working time (`working_time.ack_deadline`, issue 12): red and orange the rubric's
  clock hours, day and night; yellow the same clock time (Asia/Shanghai) on the next working day of the official
  calendar after the day the alert opened, was raised or escalated; `ACK_DEADLINE_SCALE` scales only the timer's
  wait (`AckDeadline.due_at`), never the deadline shown (`AckDeadline.working_due_at`);
- each notified body confirms receipt for itself (`on_acknowledge`); the alert is acknowledged, and escalation
  stops, once a union or mediation_centre body has confirmed; a confirmation by any other kind of body
  (labour_inspection, arbitration, legal_aid) is recorded but leaves the alert open; a body's second confirmation
  at the same level changes nothing (its first receipt stands), while a level raise asks every body again;
  only a notified body acknowledges or resolves; a resolved alert cannot be acknowledged or resolved again;
- each body is notified once per alert event even when two routing pairs resolve to it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from services.alerts import receipts
from services.alerts.routing import (
    BodyKind,
    BodyLevel,
    BodyRef,
    RoutingTable,
    escalation_target,
    resolve_targets,
)
from services.alerts.settings import AlertsSettings
from services.alerts.working_time import AckDeadline, WorkingCalendar, ack_deadline, default_calendar
from shared.events import AlertState, RiskLevel
from shared.report import Report

EXPIRED_OUTCOME = "expired"
EXPIRED_NOTE = "超过 {days} 天无新报告,系统自动关闭 / closed by the system after {days} days without a new report"


@dataclass(frozen=True)
class Policy:
    """What the lifecycle needs from the settings: the routing table, the join window, the deadline scale and the
    official working-day calendar (loaded by the caller, so the decisions stay pure)."""

    routing: RoutingTable
    deadline_scale: float
    join_window: timedelta
    inbox_url: str
    link_secret: str = field(default="", repr=False)
    """Signs the receipt links; empty: messages carry none (pure tests that do not look at links)."""
    link_days: float = 30.0
    calendar: WorkingCalendar = field(default_factory=default_calendar)

    @classmethod
    def from_settings(cls, settings: AlertsSettings, routing: RoutingTable,
                      calendar: WorkingCalendar | None = None) -> Policy:
        return cls(routing=routing, deadline_scale=settings.ack_deadline_scale,
                   join_window=timedelta(days=settings.join_window_days), inbox_url=settings.inbox_url,
                   link_secret=settings.link_secret, link_days=settings.link_days,
                   calendar=calendar or default_calendar())

    def alert_url(self, alert_id: str) -> str:
        """The alert's page in the inbox."""
        return receipts.alert_url(self.inbox_url, alert_id)

    def receipt_url(self, alert_id: str, body_id: str, level: RiskLevel, now: datetime) -> str | None:
        """The one-click receipt link for `body_id`, told of the alert at `level` now."""
        if not self.link_secret:
            return None
        claim = receipts.ReceiptClaim(alert_id=alert_id, body_id=body_id, level=level,
                                      expires_at=receipts.expiry(now, self.link_days))
        return receipts.receipt_url(self.inbox_url, receipts.sign(self.link_secret, claim))

    def ack_deadline(self, level: RiskLevel, seconds: int | None, start: datetime) -> AckDeadline | None:
        """The acknowledgement deadline of an alert of `level` opened, raised or escalated at `start`: in working
        time by the calendar (`working_due_at`, with its `rule`), its timer scaled by ACK_DEADLINE_SCALE (`due_at`).
        None when the level has no deadline (`seconds` None)."""
        return ack_deadline(level.value, start, seconds, scale=self.deadline_scale, calendar=self.calendar)

    def expired_note(self) -> str:
        days = self.join_window.days or self.join_window.total_seconds() / 86400
        return EXPIRED_NOTE.format(days=days)


@dataclass(frozen=True)
class AlertSnapshot:
    """What the lifecycle needs to know about an unresolved (or just resolved) alert."""

    level: RiskLevel
    state: AlertState
    report_ids: tuple[str, ...]
    updated_at: datetime
    region_code: str
    deadline_seconds: int | None = None
    ack_deadline: datetime | None = None
    escalation_exhausted: bool = False
    highest_union_level: BodyLevel | None = None
    confirmed_by: frozenset[str] = frozenset()
    """The bodies that confirmed receipt at the alert's current level (read only when acknowledging)."""


@dataclass(frozen=True)
class Assessed:
    """An assessment arriving for the alert's (credit_code, kind): the report, its level and its deadline."""

    report_id: str
    level: RiskLevel
    report: Report
    ack_deadline_seconds: int | None
    replay: bool = False


# --- decisions -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Ignore:
    """Nothing changes (a replay, a report already joined, or a level that opens no alert)."""

    why: str


@dataclass(frozen=True)
class _Notifying:
    """What a decision that (re)arms the alert at `level` carries: whom to notify and the new deadline."""

    level: RiskLevel
    targets: tuple[BodyRef, ...]
    deadline: AckDeadline | None
    highest_union_level: BodyLevel | None

    @property
    def ack_deadline(self) -> datetime | None:
        """When the escalation timer fires (the scaled wait)."""
        return _timer(self.deadline)


@dataclass(frozen=True)
class Open(_Notifying):
    """Open a new alert at `level`, notify `targets`, acknowledgement due by `deadline`."""


@dataclass(frozen=True)
class Join:
    """The report joins the alert; nobody is notified."""


@dataclass(frozen=True)
class RaiseLevel(_Notifying):
    """The report joins and raises the alert to `level`: open again, deadline re-armed, every target notified."""


@dataclass(frozen=True)
class Expire:
    """Close the alert as expired (no report for the join window); then open `then`, if the report alerts."""

    then: Open | None


AssessmentDecision = Ignore | Open | Join | RaiseLevel | Expire


@dataclass(frozen=True)
class Escalate:
    """Notify `body` (the union one level up), record the escalation and restart the deadline (same rule, from the
    escalation time)."""

    body: BodyRef
    from_level: BodyLevel | None
    deadline: AckDeadline | None

    @property
    def ack_deadline(self) -> datetime | None:
        """When the escalation timer fires (the scaled wait)."""
        return _timer(self.deadline)


def _timer(deadline: AckDeadline | None) -> datetime | None:
    return None if deadline is None else deadline.due_at


@dataclass(frozen=True)
class Exhausted:
    """Nobody above to escalate to: the alert stays overdue, and escalation stops looking."""


DeadlineDecision = Ignore | Escalate | Exhausted


@dataclass(frozen=True)
class Acknowledge:
    """Record `body_id`'s receipt; with `stops_escalation`, open → acknowledged by it (escalation stops)."""

    body_id: str
    stops_escalation: bool = True


@dataclass(frozen=True)
class Close:
    """→ resolved by `body_id`, with the outcome and the note."""

    body_id: str
    outcome: str
    note: str


@dataclass(frozen=True)
class AlreadyDone:
    """The body already confirmed receipt at this level: a no-op (its first receipt stands)."""


@dataclass(frozen=True)
class Conflict:
    """The alert is already resolved: it cannot be acknowledged or resolved again."""


@dataclass(frozen=True)
class NotAllowed:
    """The admin acts on no alert: only a notified body may acknowledge or resolve."""


@dataclass(frozen=True)
class NotVisible:
    """The caller was never notified of the alert: for it the alert does not exist."""


ActionDecision = Acknowledge | Close | AlreadyDone | Conflict | NotAllowed | NotVisible


# --- rules ---------------------------------------------------------------------------------------------------------


def is_expired(alert: AlertSnapshot, now: datetime, policy: Policy) -> bool:
    """Whether the alert has had no update for longer than the join window."""
    return now - alert.updated_at > policy.join_window


def highest_union_level(current: BodyLevel | None, bodies: Sequence[BodyRef]) -> BodyLevel | None:
    """The highest union level notified once `bodies` are notified too."""
    highest = current
    for body in bodies:
        if body.kind == BodyKind.union and (highest is None or body.level.rank > highest.rank):
            highest = body.level
    return highest


def targets_for(policy: Policy, level: RiskLevel, report: Report, bodies: Sequence[BodyRef]) -> tuple[BodyRef, ...]:
    """Who an alert of `level` on `report` goes to among the active `bodies`: each body once."""
    return tuple(resolve_targets(policy.routing, level, report, bodies))


def needs_targets(alert: AlertSnapshot | None, event: Assessed, now: datetime, policy: Policy) -> bool:
    """Whether `on_assessment` will route (open or raise), i.e. whether the covering bodies are worth loading:
    a silent join, a replay or a blue report never needs them."""
    if event.replay or not event.level.alerts:
        return False
    if alert is None or is_expired(alert, now, policy):
        return True
    return event.report_id not in alert.report_ids and event.level.rank > alert.level.rank


def on_assessment(alert: AlertSnapshot | None, event: Assessed, bodies: Sequence[BodyRef], now: datetime,
                  policy: Policy) -> AssessmentDecision:
    """What an assessment does to the unresolved alert of its (credit_code, kind), or to none.

    `bodies` are the active bodies that may cover the report (routing picks among them); they are only read when
    `needs_targets` says so.
    """
    if event.replay:
        return Ignore("a what-if re-score notifies nobody")
    if alert is not None and is_expired(alert, now, policy):
        return Expire(then=_open(event, bodies, now, policy))
    if alert is not None:
        return _join(alert, event, bodies, now, policy)
    opened = _open(event, bodies, now, policy)
    return opened if opened is not None else Ignore(f"a {event.level.value} report opens no alert")


def _open(event: Assessed, bodies: Sequence[BodyRef], now: datetime, policy: Policy) -> Open | None:
    if not event.level.alerts:
        return None
    targets = targets_for(policy, event.level, event.report, bodies)
    return Open(level=event.level, targets=targets,
                deadline=policy.ack_deadline(event.level, event.ack_deadline_seconds, now),
                highest_union_level=highest_union_level(None, targets))


def _join(alert: AlertSnapshot, event: Assessed, bodies: Sequence[BodyRef], now: datetime,
          policy: Policy) -> Join | RaiseLevel | Ignore:
    if event.report_id in alert.report_ids:
        return Ignore("the report already joined the alert")
    if event.level.rank <= alert.level.rank:
        return Join()
    targets = targets_for(policy, event.level, event.report, bodies)
    return RaiseLevel(level=event.level, targets=targets,
                      deadline=policy.ack_deadline(event.level, event.ack_deadline_seconds, now),
                      highest_union_level=highest_union_level(alert.highest_union_level, targets))


def is_due(alert: AlertSnapshot, now: datetime) -> bool:
    """Whether an open alert is past its acknowledgement deadline and escalation still has somewhere to go."""
    return (alert.state == AlertState.open and not alert.escalation_exhausted and alert.ack_deadline is not None
            and alert.ack_deadline <= now)


def on_deadline(alert: AlertSnapshot, bodies: Sequence[BodyRef], now: datetime, policy: Policy) -> DeadlineDecision:
    """The acknowledgement deadline passed: escalate to the union body above the highest union notified so far."""
    if not is_due(alert, now):
        return Ignore("not open and overdue")
    target = escalation_target(bodies, alert.region_code, alert.highest_union_level)
    if target is None:
        return Exhausted()
    return Escalate(body=target, from_level=alert.highest_union_level,
                    deadline=policy.ack_deadline(alert.level, alert.deadline_seconds, now))


ACKNOWLEDGING_KINDS = frozenset({BodyKind.union, BodyKind.mediation_centre})
"""The kinds of body whose confirmation acknowledges the alert and stops escalation (TASK7 "Alert lifecycle")."""


def on_acknowledge(alert: AlertSnapshot, body_id: str | None, *, notified: bool,
                   body_kind: BodyKind | None) -> ActionDecision:
    """A body confirms receipt ("we have it"). `body_id` None is the admin; `notified` whether that body was told
    of the alert; `body_kind` its kind: a union or mediation centre's receipt acknowledges an open alert (escalation
    stops), another kind's receipt is recorded and the alert stays as it is."""
    refused = _may_act(body_id, notified)
    if refused is not None:
        return refused
    assert body_id is not None
    if alert.state == AlertState.resolved:
        return Conflict()
    if body_id in alert.confirmed_by:
        return AlreadyDone()
    return Acknowledge(body_id=body_id,
                       stops_escalation=alert.state == AlertState.open and body_kind in ACKNOWLEDGING_KINDS)


def on_resolve(alert: AlertSnapshot, body_id: str | None, *, notified: bool, outcome: str,
               note: str) -> ActionDecision:
    """A body closes the alert with its outcome and a note (from open or acknowledged)."""
    refused = _may_act(body_id, notified)
    if refused is not None:
        return refused
    assert body_id is not None
    if alert.state == AlertState.resolved:
        return Conflict()
    return Close(body_id=body_id, outcome=outcome, note=note)


def _may_act(body_id: str | None, notified: bool) -> NotAllowed | NotVisible | None:
    if body_id is None:
        return NotAllowed()
    if not notified:
        return NotVisible()
    return None


# --- case ownership (包案) -------------------------------------------------------------------------------------------
# A notified body names the alert's responsible leader (again: the new one replaces the old, and both namings stay in
# the case log) and records the visits made on it. Naming needs an unresolved alert; a visit may be recorded after
# the alert was resolved as long as it took place before, and never in the future (beyond the clocks' skew).

VISIT_CLOCK_SKEW = timedelta(minutes=5)
MAX_VISITS = 500  # per alert: the case log lives on the alert row


@dataclass(frozen=True)
class NameOwner:
    """Record `body_id`'s naming of the responsible leader (replacing any earlier one)."""

    body_id: str


@dataclass(frozen=True)
class RecordVisit:
    """Record the visit, reported by `body_id`."""

    body_id: str


@dataclass(frozen=True)
class VisitRefused:
    """The visit cannot be recorded as given: `field` and `reason` (zh / en) say why (a 422)."""

    field: str
    reason: str


@dataclass(frozen=True)
class VisitLogFull:
    """The alert has `MAX_VISITS` visits recorded already (a 409)."""


VISIT_IN_FUTURE = "走访时间不能晚于当前时间 / the visit cannot be in the future"


def on_name_owner(alert: AlertSnapshot, body_id: str | None, *, notified: bool
                  ) -> NameOwner | Conflict | NotAllowed | NotVisible:
    """A body names the leader who owns the case until it is settled."""
    refused = _may_act(body_id, notified)
    if refused is not None:
        return refused
    assert body_id is not None
    if alert.state == AlertState.resolved:
        return Conflict()
    return NameOwner(body_id=body_id)


def on_record_visit(alert: AlertSnapshot, body_id: str | None, *, notified: bool, at: datetime, now: datetime,
                    resolved_at: datetime | None, visits: int
                    ) -> RecordVisit | VisitRefused | VisitLogFull | Conflict | NotAllowed | NotVisible:
    """A body records a visit made `at`; the alert has `visits` recorded already."""
    refused = _may_act(body_id, notified)
    if refused is not None:
        return refused
    assert body_id is not None
    if at > now + VISIT_CLOCK_SKEW:
        return VisitRefused("at", VISIT_IN_FUTURE)
    if alert.state == AlertState.resolved and (resolved_at is None or at > resolved_at):
        return Conflict()  # the case was settled before this visit
    if visits >= MAX_VISITS:
        return VisitLogFull()
    return RecordVisit(body_id=body_id)
