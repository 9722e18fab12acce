"""The alert lifecycle: open, join, raise, escalate, acknowledge, resolve — each change stored with the bodies
to notify, the deliveries to make and the `alerts.v1` event to publish, in one transaction.

Rules (TASK7.md): at most one unresolved alert per (credit_code, kind); a report on the same pair within the join
window of the alert's last update joins it; the alert's level is the highest of its reports; a joining report that
raises the level notifies every target of the new level; blue and none reports join without notifying anyone.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts.metrics import ALERTS_LEVEL_RAISED, ALERTS_OPENED, ESCALATIONS
from services.alerts.models import Alert, Body, Delivery, Escalation, Notification, OutboxMessage, ProcessedEvent
from services.alerts.routing import BodyKind, BodyLevel, BodyRef, RoutingTable, escalation_target, resolve_targets
from services.alerts.settings import AlertsSettings
from shared.events import AlertChanged, AlertState, ReportAssessed, RiskLevel, Topic
from shared.http import Conflict, Forbidden, NotFound
from shared.outbox import outbox_row
from shared.report import Report, ReportKind

EXPIRED_NOTE = "超过 {days} 天无新报告,系统自动关闭 / closed by the system after {days} days without a new report"


@dataclass(frozen=True)
class Caller:
    """Who is calling the API: the admin, or one body."""

    body_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.body_id is None


ADMIN = Caller()


@dataclass(frozen=True)
class Policy:
    """What the lifecycle needs from the settings."""

    routing: RoutingTable
    deadline_scale: float
    join_window: timedelta
    inbox_url: str

    @classmethod
    def from_settings(cls, settings: AlertsSettings, routing: RoutingTable) -> Policy:
        return cls(routing=routing, deadline_scale=settings.ack_deadline_scale,
                   join_window=timedelta(days=settings.join_window_days), inbox_url=settings.inbox_url)

    def deadline(self, seconds: int | None, now: datetime) -> datetime | None:
        return None if seconds is None else now + timedelta(seconds=seconds * self.deadline_scale)


# --- consuming assessments -----------------------------------------------------------------------------------------


async def handle_assessed(session: AsyncSession, event: ReportAssessed, policy: Policy, now: datetime) -> list[str]:
    """Apply one assessment; returns the ids of the alerts it changed. A redelivered event changes nothing."""
    first_time = await session.scalar(
        insert(ProcessedEvent).values(event_id=str(event.event_id), processed_at=now)
        .on_conflict_do_nothing().returning(ProcessedEvent.event_id)
    )
    if first_time is None or event.replay:
        return []  # a copy, or a what-if re-score: recorded by risk, notifies nobody here
    report = event.report
    alert = await session.scalar(
        select(Alert).where(Alert.credit_code == report.enterprise.credit_code, Alert.kind == report.kind.value,
                            Alert.state != AlertState.resolved.value).with_for_update()
    )
    if alert is not None and now - alert.updated_at > policy.join_window:
        _close_expired(session, alert, policy, now)
        await session.flush()  # the partial unique index must see it resolved before a new alert opens
        alert = None
    if alert is not None:
        return await _join(session, alert, event, policy, now)
    if event.level.alerts:
        return [await _open(session, event, policy, now)]
    return []


async def _open(session: AsyncSession, event: ReportAssessed, policy: Policy, now: datetime) -> str:
    report = event.report
    alert = Alert(
        id=str(uuid.uuid4()), credit_code=report.enterprise.credit_code, kind=report.kind.value,
        level=event.level.value, state=AlertState.open.value, report_ids=[event.report_id], trace_id=event.trace_id,
        enterprise_name=report.enterprise.name, region_code=report.region_code, score=event.score,
        report=report.model_dump(mode="json"), assessment=_assessment(event), first_accepted_at=event.accepted_at,
        opened_at=now, updated_at=now, deadline_seconds=event.ack_deadline_seconds,
        ack_deadline=policy.deadline(event.ack_deadline_seconds, now), escalation_exhausted=False,
    )
    session.add(alert)
    await session.flush()
    targets = await _routing_targets(session, policy, event.level, report)
    await _notify(session, alert, targets, reason="routing", event_type="alert.opened", policy=policy, now=now)
    _publish(session, alert, "alert.opened", now, trace_id=event.trace_id, report_id=event.report_id,
             body_ids=[body.id for body in targets])
    ALERTS_OPENED.labels(level=alert.level).inc()
    return alert.id


async def _join(session: AsyncSession, alert: Alert, event: ReportAssessed, policy: Policy, now: datetime) -> list[str]:
    if event.report_id in alert.report_ids:
        return []
    alert.report_ids = [*alert.report_ids, event.report_id]
    alert.updated_at = now
    if event.level.rank <= RiskLevel(alert.level).rank:
        return [alert.id]
    # A higher level: the alert takes it, needs acknowledging again, and every target of the new level hears.
    alert.level = event.level.value
    alert.score = event.score
    alert.report = event.report.model_dump(mode="json")
    alert.assessment = _assessment(event)
    alert.state = AlertState.open.value
    alert.deadline_seconds = event.ack_deadline_seconds
    alert.ack_deadline = policy.deadline(event.ack_deadline_seconds, now)
    alert.escalation_exhausted = False
    targets = await _routing_targets(session, policy, event.level, event.report)
    await _notify(session, alert, targets, reason="level_raised", event_type="alert.level_raised", policy=policy,
                  now=now)
    _publish(session, alert, "alert.level_raised", now, trace_id=event.trace_id, report_id=event.report_id,
             body_ids=[body.id for body in targets])
    ALERTS_LEVEL_RAISED.labels(level=alert.level).inc()
    return [alert.id]


def _close_expired(session: AsyncSession, alert: Alert, policy: Policy, now: datetime) -> None:
    days = policy.join_window.days or policy.join_window.total_seconds() / 86400
    alert.state = AlertState.resolved.value
    alert.resolved_at = now
    alert.outcome = "expired"
    alert.note = EXPIRED_NOTE.format(days=days)
    alert.updated_at = now
    _publish(session, alert, "alert.resolved", now, trace_id=alert.trace_id)


def _assessment(event: ReportAssessed) -> dict[str, Any]:
    return {"report_id": event.report_id, "score": event.score, "level": event.level.value,
            "rubric_version": event.rubric_version, "assessed_at": event.assessed_at.isoformat(),
            "reasons": [reason.model_dump() for reason in event.reasons]}


# --- routing and notifying -----------------------------------------------------------------------------------------


def body_ref(body: Body) -> BodyRef:
    return BodyRef(body_id=body.id, kind=BodyKind(body.kind), level=BodyLevel(body.level),
                   region_code=body.region_code)


async def _bodies_in_province(session: AsyncSession, region_code: str) -> dict[str, Body]:
    rows = await session.scalars(
        select(Body).where(Body.active.is_(True), Body.region_code.startswith(region_code[:2]))
    )
    return {body.id: body for body in rows}


async def _routing_targets(session: AsyncSession, policy: Policy, level: RiskLevel, report: Report) -> list[Body]:
    bodies = await _bodies_in_province(session, report.region_code)
    refs = resolve_targets(policy.routing, level, report, [body_ref(body) for body in bodies.values()])
    return [bodies[ref.body_id] for ref in refs]


async def _notify(session: AsyncSession, alert: Alert, bodies: Sequence[Body], *, reason: str, event_type: str,
                  policy: Policy, now: datetime) -> None:
    """Record who is told, raise the highest union level reached, and queue one delivery per channel."""
    for body in bodies:
        session.add(Notification(alert_id=alert.id, body_id=body.id, reason=reason, event_type=event_type, at=now))
        if body.kind == BodyKind.union.value and (
            alert.highest_union_level is None or BodyLevel(body.level).rank > BodyLevel(alert.highest_union_level).rank
        ):
            alert.highest_union_level = body.level
    await session.flush()
    if not bodies:
        return
    payload = json.dumps(
        {"event": event_type, "alert": await alert_view(session, alert, policy=policy),
         "report": alert.report, "assessment": alert.assessment},
        ensure_ascii=False, separators=(",", ":"),
    )
    for body in bodies:
        for channel in body.channels:
            session.add(Delivery(
                id=str(uuid.uuid4()), alert_id=alert.id, body_id=body.id, event_type=event_type,
                channel_type=channel["type"], channel=channel, payload=payload, state="pending", attempts=0,
                created_at=now, next_attempt_at=now,
            ))


def _publish(session: AsyncSession, alert: Alert, event_type: str, now: datetime, *, trace_id: str,
             report_id: str | None = None, body_ids: Sequence[str] = ()) -> None:
    event = AlertChanged(
        trace_id=trace_id, occurred_at=now, event_type=event_type, alert_id=alert.id,
        credit_code=alert.credit_code, kind=ReportKind(alert.kind), level=RiskLevel(alert.level),
        state=AlertState(alert.state), report_ids=list(alert.report_ids), report_id=report_id,
        body_ids=list(body_ids),
    )
    session.add(outbox_row(OutboxMessage, Topic.alerts.value, event, now))


# --- escalation ----------------------------------------------------------------------------------------------------


async def escalate_due(session: AsyncSession, policy: Policy, now: datetime, limit: int = 100) -> int:
    """Escalate open alerts past their deadline; returns how many were handled (escalated or exhausted)."""
    due = (await session.scalars(
        select(Alert).where(Alert.state == AlertState.open.value, Alert.escalation_exhausted.is_(False),
                            Alert.ack_deadline <= now)
        .order_by(Alert.ack_deadline).limit(limit).with_for_update(skip_locked=True)
    )).all()
    for alert in due:
        bodies = await _bodies_in_province(session, alert.region_code)
        current = BodyLevel(alert.highest_union_level) if alert.highest_union_level else None
        target = escalation_target([body_ref(body) for body in bodies.values()], alert.region_code, current)
        if target is None:
            alert.escalation_exhausted = True  # nobody above: it stays overdue on the dashboards
            continue
        body = bodies[target.body_id]
        session.add(Escalation(alert_id=alert.id, body_id=body.id, from_level=alert.highest_union_level,
                               to_level=body.level, at=now))
        alert.updated_at = now
        alert.ack_deadline = policy.deadline(alert.deadline_seconds, now)
        await _notify(session, alert, [body], reason="escalation", event_type="alert.escalated", policy=policy,
                      now=now)
        _publish(session, alert, "alert.escalated", now, trace_id=alert.trace_id, body_ids=[body.id])
        ESCALATIONS.inc()
    return len(due)


# --- acting on alerts ----------------------------------------------------------------------------------------------


async def _alert_for_action(session: AsyncSession, alert_id: str, caller: Caller) -> Alert:
    if caller.is_admin:
        raise Forbidden("只有收到预警的机构可以确认或办结 / Only a notified body can acknowledge or resolve an alert")
    alert = await session.get(Alert, alert_id, with_for_update=True)
    if alert is None or not await was_notified(session, alert_id, caller.body_id):
        raise NotFound("没有该预警 / No such alert")
    return alert


async def acknowledge(session: AsyncSession, alert_id: str, caller: Caller, now: datetime) -> Alert:
    """Open → acknowledged (stops escalation). Acknowledging again changes nothing."""
    alert = await _alert_for_action(session, alert_id, caller)
    if alert.state == AlertState.resolved.value:
        raise Conflict("该预警已办结 / The alert is already resolved")
    if alert.state == AlertState.open.value:
        alert.state = AlertState.acknowledged.value
        alert.acknowledged_at = now
        alert.acknowledged_by = caller.body_id
        alert.updated_at = now
        _publish(session, alert, "alert.acknowledged", now, trace_id=alert.trace_id, body_ids=[caller.body_id or ""])
    return alert


async def resolve(session: AsyncSession, alert_id: str, caller: Caller, *, outcome: str, note: str,
                  now: datetime) -> Alert:
    """Open or acknowledged → resolved, with the outcome and a note."""
    alert = await _alert_for_action(session, alert_id, caller)
    if alert.state == AlertState.resolved.value:
        raise Conflict("该预警已办结 / The alert is already resolved")
    alert.state = AlertState.resolved.value
    alert.resolved_at = now
    alert.resolved_by = caller.body_id
    alert.outcome = outcome
    alert.note = note
    alert.updated_at = now
    _publish(session, alert, "alert.resolved", now, trace_id=alert.trace_id, body_ids=[caller.body_id or ""])
    return alert


async def was_notified(session: AsyncSession, alert_id: str, body_id: str | None) -> bool:
    found = await session.scalar(
        select(Notification.id).where(Notification.alert_id == alert_id, Notification.body_id == body_id).limit(1)
    )
    return found is not None


# --- views ---------------------------------------------------------------------------------------------------------


async def alert_view(session: AsyncSession, alert: Alert, *, policy: Policy | None = None,
                     deliveries: bool = False) -> dict[str, Any]:
    """The alert as `GET /v1/alerts/{id}` shows it (and as webhooks carry it): no personal data."""
    notified = (await session.scalars(
        select(Notification).where(Notification.alert_id == alert.id).order_by(Notification.id)
    )).all()
    escalations = (await session.scalars(
        select(Escalation).where(Escalation.alert_id == alert.id).order_by(Escalation.id)
    )).all()
    view: dict[str, Any] = {
        "alert_id": alert.id, "credit_code": alert.credit_code, "kind": alert.kind, "level": alert.level,
        "state": alert.state, "report_ids": list(alert.report_ids), "enterprise_name": alert.enterprise_name,
        "region_code": alert.region_code, "score": alert.score, "reasons": alert.assessment.get("reasons", []),
        "opened_at": _iso(alert.opened_at), "updated_at": _iso(alert.updated_at),
        "ack_deadline": _iso(alert.ack_deadline) if alert.state == AlertState.open.value else None,
        "acknowledged_at": _iso(alert.acknowledged_at), "resolved_at": _iso(alert.resolved_at),
        "outcome": alert.outcome, "note": alert.note,
        "notified": [{"body_id": n.body_id, "at": _iso(n.at), "reason": n.reason} for n in notified],
        "escalations": [{"body_id": e.body_id, "from_level": e.from_level, "to_level": e.to_level, "at": _iso(e.at)}
                        for e in escalations],
    }
    if policy is not None:
        view["inbox_url"] = policy.inbox_url
    if deliveries:
        rows = (await session.scalars(
            select(Delivery).where(Delivery.alert_id == alert.id).order_by(Delivery.created_at, Delivery.id)
        )).all()
        view["deliveries"] = [
            {"delivery_id": d.id, "body_id": d.body_id, "event": d.event_type, "channel": d.channel_type,
             "state": d.state, "attempts": d.attempts, "last_status": d.last_status, "last_error": d.last_error,
             "next_attempt_at": _iso(d.next_attempt_at) if d.state == "pending" else None,
             "delivered_at": _iso(d.delivered_at)} for d in rows
        ]
    return view


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None
