"""The alerts service's business steps: apply the lifecycle's decisions (`lifecycle.py`) through the repository —
each change stored with the bodies to notify, the deliveries to make and the `alerts.v1` event to publish — and
the bodies directory. Flush only: the caller's transaction (a request, a Kafka batch, a worker tick) commits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts import lifecycle, repository
from services.alerts.backoff import next_delay, should_give_up
from services.alerts.channels import ChannelConfig, DeliveryResult, channel_config_adapter
from services.alerts.lifecycle import AlertSnapshot, Assessed, Policy
from services.alerts.metrics import ALERTS_LEVEL_RAISED, ALERTS_OPENED, ESCALATIONS
from services.alerts.models import (
    Alert,
    Body,
    Delivery,
    DeliveryState,
    Escalation,
    Notification,
    OutboxMessage,
)
from services.alerts.routing import BodyKind, BodyLevel, BodyRef
from services.alerts.schemas import (
    AlertDetail,
    AlertPage,
    AlertView,
    AssessmentView,
    BodyCreate,
    BodyCreated,
    BodyUpdate,
    BodyView,
    DeliveryView,
    EscalationView,
    NotifiedView,
    Outcome,
    WebhookAlert,
    WebhookPayload,
)
from services.alerts.settings import AlertsSettings
from shared.auth import Caller, hash_token, new_token
from shared.events import AlertChanged, AlertState, ReportAssessed, RiskLevel, Topic
from shared.http import Conflict, Forbidden, NotFound
from shared.outbox import outbox_row
from shared.report import ReportKind

NO_SUCH_ALERT = "没有该预警 / No such alert"
NO_SUCH_BODY = "没有该机构 / No such body"
ONLY_NOTIFIED = "只有收到预警的机构可以确认或办结 / Only a notified body can acknowledge or resolve an alert"
ALREADY_RESOLVED = "该预警已办结 / The alert is already resolved"


# --- bodies --------------------------------------------------------------------------------------------------------


def body_view(body: Body) -> BodyView:
    return BodyView(
        body_id=body.id, name=body.name, kind=body.kind, level=body.level, region_code=body.region_code,
        channels=[{k: v for k, v in channel.items() if k != "secret"} for channel in body.channels],
        active=body.active, created_at=body.created_at,
    )


def body_ref(body: Body) -> BodyRef:
    return BodyRef(body_id=body.id, kind=BodyKind(body.kind), level=BodyLevel(body.level),
                   region_code=body.region_code)


async def create_body(session: AsyncSession, payload: BodyCreate, now: datetime) -> BodyCreated:
    """Register a body with its channels; its token is returned once and stored only as a hash."""
    token = new_token("body")
    body = Body(id=str(uuid.uuid4()), name=payload.name, kind=payload.kind.value, level=payload.level.value,
                region_code=payload.region_code, channels=[c.model_dump() for c in payload.channels],
                token_hash=hash_token(token), active=True, created_at=now, updated_at=now)
    repository.add(session, body)
    await repository.flush(session)
    return BodyCreated(body_id=body.id, token=token)


async def list_bodies(session: AsyncSession, *, region_code: str | None, include_inactive: bool) -> list[BodyView]:
    bodies = await repository.list_bodies(session, region_prefix=region_code, include_inactive=include_inactive)
    return [body_view(body) for body in bodies]


async def get_body(session: AsyncSession, body_id: str, caller: Caller) -> BodyView:
    """A body, for the admin or the body itself; anyone else is told there is no such body."""
    if not caller.is_admin and caller.body_id != body_id:
        raise NotFound(NO_SUCH_BODY)
    body = await repository.get_body(session, body_id)
    if body is None:
        raise NotFound(NO_SUCH_BODY)
    return body_view(body)


async def update_body(session: AsyncSession, body_id: str, payload: BodyUpdate, now: datetime) -> BodyView:
    body = await repository.get_body(session, body_id, for_update=True)
    if body is None:
        raise NotFound(NO_SUCH_BODY)
    if payload.name is not None:
        body.name = payload.name
    if payload.channels is not None:
        body.channels = [c.model_dump() for c in payload.channels]
    if payload.active is not None:
        body.active = payload.active
    body.updated_at = now
    await repository.flush(session)
    if not body.active:
        await cancel_deliveries_of_body(session, body.id, now)
    return body_view(body)


async def deactivate_body(session: AsyncSession, body_id: str, now: datetime) -> None:
    body = await repository.get_body(session, body_id, for_update=True)
    if body is None:
        raise NotFound(NO_SUCH_BODY)
    body.active = False
    body.updated_at = now
    await repository.flush(session)
    await cancel_deliveries_of_body(session, body.id, now)


# --- consuming assessments -----------------------------------------------------------------------------------------


def snapshot(alert: Alert) -> AlertSnapshot:
    """The lifecycle's view of an alert row."""
    return AlertSnapshot(
        level=RiskLevel(alert.level), state=AlertState(alert.state), report_ids=tuple(alert.report_ids),
        updated_at=alert.updated_at, region_code=alert.region_code, deadline_seconds=alert.deadline_seconds,
        ack_deadline=alert.ack_deadline, escalation_exhausted=alert.escalation_exhausted,
        highest_union_level=BodyLevel(alert.highest_union_level) if alert.highest_union_level else None,
    )


async def handle_assessed(session: AsyncSession, event: ReportAssessed, policy: Policy, now: datetime) -> list[str]:
    """Apply one assessment; returns the ids of the alerts it changed. A redelivered event changes nothing."""
    if not await repository.mark_processed(session, str(event.event_id), now) or event.replay:
        return []  # a copy, or a what-if re-score: recorded by risk, notifies nobody here
    report = event.report
    alert = await repository.unresolved_alert_for_update(session, report.enterprise.credit_code, report.kind.value)
    current = None if alert is None else snapshot(alert)
    assessed = Assessed(report_id=event.report_id, level=event.level, report=report,
                        ack_deadline_seconds=event.ack_deadline_seconds, replay=event.replay)
    bodies: dict[str, Body] = {}
    if lifecycle.needs_targets(current, assessed, now, policy):
        bodies = await repository.active_bodies_in_province(session, report.region_code)
    decision = lifecycle.on_assessment(current, assessed, [body_ref(body) for body in bodies.values()], now, policy)
    match decision:
        case lifecycle.Ignore():
            return []
        case lifecycle.Open():
            return [await _open(session, event, decision, bodies, policy, now)]
        case lifecycle.Join():
            assert alert is not None
            _add_report(alert, event, now)
            return [alert.id]
        case lifecycle.RaiseLevel():
            assert alert is not None
            await _raise(session, alert, event, decision, bodies, policy, now)
            return [alert.id]
        case lifecycle.Expire():
            assert alert is not None
            _close_expired(session, alert, policy, now)
            await repository.flush(session)  # the partial unique index must see it resolved before a new one opens
            if decision.then is None:
                return []
            return [await _open(session, event, decision.then, bodies, policy, now)]
    raise AssertionError(f"unhandled decision {decision!r}")


async def _open(session: AsyncSession, event: ReportAssessed, decision: lifecycle.Open, bodies: dict[str, Body],
                policy: Policy, now: datetime) -> str:
    report = event.report
    alert = Alert(
        id=str(uuid.uuid4()), credit_code=report.enterprise.credit_code, kind=report.kind.value,
        level=decision.level.value, state=AlertState.open.value, report_ids=[event.report_id],
        trace_id=event.trace_id, enterprise_name=report.enterprise.name, region_code=report.region_code,
        score=event.score, report=report.model_dump(mode="json"), assessment=_assessment(event),
        first_accepted_at=event.accepted_at, opened_at=now, updated_at=now,
        deadline_seconds=event.ack_deadline_seconds, ack_deadline=decision.ack_deadline, escalation_exhausted=False,
        highest_union_level=decision.highest_union_level.value if decision.highest_union_level else None,
    )
    repository.add(session, alert)
    await repository.flush(session)
    targets = [bodies[ref.body_id] for ref in decision.targets]
    await _notify(session, alert, targets, reason="routing", event_type="alert.opened", policy=policy, now=now)
    _publish(session, alert, "alert.opened", now, trace_id=event.trace_id, report_id=event.report_id,
             body_ids=[body.id for body in targets])
    ALERTS_OPENED.labels(level=alert.level).inc()
    return alert.id


def _add_report(alert: Alert, event: ReportAssessed, now: datetime) -> None:
    alert.report_ids = [*alert.report_ids, event.report_id]
    alert.updated_at = now


async def _raise(session: AsyncSession, alert: Alert, event: ReportAssessed, decision: lifecycle.RaiseLevel,
                 bodies: dict[str, Body], policy: Policy, now: datetime) -> None:
    """The alert takes the higher level, needs acknowledging again, and every target of the new level hears."""
    _add_report(alert, event, now)
    alert.level = decision.level.value
    alert.score = event.score
    alert.report = event.report.model_dump(mode="json")
    alert.assessment = _assessment(event)
    alert.state = AlertState.open.value
    alert.deadline_seconds = event.ack_deadline_seconds
    alert.ack_deadline = decision.ack_deadline
    alert.escalation_exhausted = False
    alert.highest_union_level = decision.highest_union_level.value if decision.highest_union_level else None
    targets = [bodies[ref.body_id] for ref in decision.targets]
    await _notify(session, alert, targets, reason="level_raised", event_type="alert.level_raised", policy=policy,
                  now=now)
    _publish(session, alert, "alert.level_raised", now, trace_id=event.trace_id, report_id=event.report_id,
             body_ids=[body.id for body in targets])
    ALERTS_LEVEL_RAISED.labels(level=alert.level).inc()


def _close_expired(session: AsyncSession, alert: Alert, policy: Policy, now: datetime) -> None:
    alert.state = AlertState.resolved.value
    alert.resolved_at = now
    alert.outcome = lifecycle.EXPIRED_OUTCOME
    alert.note = policy.expired_note()
    alert.updated_at = now
    _publish(session, alert, "alert.resolved", now, trace_id=alert.trace_id)


def _assessment(event: ReportAssessed) -> dict[str, Any]:
    return AssessmentView(
        report_id=event.report_id, score=event.score, level=event.level, rubric_version=event.rubric_version,
        assessed_at=event.assessed_at.isoformat(), reasons=list(event.reasons),
    ).model_dump(mode="json")


# --- notifying -----------------------------------------------------------------------------------------------------


async def _notify(session: AsyncSession, alert: Alert, bodies: Sequence[Body], *, reason: str, event_type: str,
                  policy: Policy, now: datetime) -> None:
    """Record who is told and queue one delivery per channel, each carrying the same webhook payload."""
    repository.add(session, *(Notification(alert_id=alert.id, body_id=body.id, reason=reason,
                                           event_type=event_type, at=now) for body in bodies))
    await repository.flush(session)
    if not bodies:
        return
    payload = (await webhook_payload(session, alert, event_type, policy)).model_dump_json()
    repository.add(session, *(
        Delivery(id=str(uuid.uuid4()), alert_id=alert.id, body_id=body.id, event_type=event_type,
                 channel_type=channel["type"], channel=channel_record(channel), channel_index=index, payload=payload,
                 state=DeliveryState.pending.value, attempts=0, created_at=now, next_attempt_at=now)
        for body in bodies for index, channel in enumerate(body.channels)
    ))


async def webhook_payload(session: AsyncSession, alert: Alert, event_type: str, policy: Policy) -> WebhookPayload:
    """What every delivery of this change carries: the event, the alert (with the inbox link), the report behind
    its level and its assessment."""
    (view,) = await alert_views(session, [alert])
    return WebhookPayload(
        event=event_type, alert=WebhookAlert(**view.model_dump(), inbox_url=policy.inbox_url),
        report=alert.report, assessment=AssessmentView.model_validate(alert.assessment),
    )


def _publish(session: AsyncSession, alert: Alert, event_type: str, now: datetime, *, trace_id: str,
             report_id: str | None = None, body_ids: Sequence[str] = ()) -> None:
    event = AlertChanged(
        trace_id=trace_id, occurred_at=now, event_type=event_type, alert_id=alert.id,
        credit_code=alert.credit_code, kind=ReportKind(alert.kind), level=RiskLevel(alert.level),
        state=AlertState(alert.state), report_ids=list(alert.report_ids), report_id=report_id,
        body_ids=list(body_ids),
    )
    repository.add(session, outbox_row(OutboxMessage, Topic.alerts.value, event, now))


# --- escalation ----------------------------------------------------------------------------------------------------


async def escalate_due(session: AsyncSession, policy: Policy, now: datetime, limit: int = 100) -> int:
    """Escalate open alerts past their deadline; returns how many were handled (escalated or exhausted)."""
    due = await repository.due_alerts_for_update(session, now, limit)
    for alert in due:
        bodies = await repository.active_bodies_in_province(session, alert.region_code)
        decision = lifecycle.on_deadline(snapshot(alert), [body_ref(body) for body in bodies.values()], now, policy)
        match decision:
            case lifecycle.Exhausted():
                alert.escalation_exhausted = True  # nobody above: it stays overdue on the dashboards
            case lifecycle.Escalate():
                body = bodies[decision.body.body_id]
                repository.add(session, Escalation(
                    alert_id=alert.id, body_id=body.id,
                    from_level=decision.from_level.value if decision.from_level else None, to_level=body.level,
                    at=now))
                alert.updated_at = now
                alert.ack_deadline = decision.ack_deadline
                alert.highest_union_level = decision.body.level.value
                await _notify(session, alert, [body], reason="escalation", event_type="alert.escalated",
                              policy=policy, now=now)
                _publish(session, alert, "alert.escalated", now, trace_id=alert.trace_id, body_ids=[body.id])
                ESCALATIONS.inc()
            case lifecycle.Ignore():
                pass
    return len(due)


# --- acting on alerts ----------------------------------------------------------------------------------------------


async def _alert_for_action(session: AsyncSession, alert_id: str, caller: Caller) -> tuple[Alert, bool]:
    if caller.is_admin:
        raise Forbidden(ONLY_NOTIFIED)
    alert = await repository.get_alert(session, alert_id, for_update=True)
    if alert is None:
        raise NotFound(NO_SUCH_ALERT)
    assert caller.body_id is not None
    return alert, await repository.was_notified(session, alert_id, caller.body_id)


def _refuse(decision: lifecycle.ActionDecision) -> None:
    match decision:
        case lifecycle.NotAllowed():
            raise Forbidden(ONLY_NOTIFIED)
        case lifecycle.NotVisible():
            raise NotFound(NO_SUCH_ALERT)
        case lifecycle.Conflict():
            raise Conflict(ALREADY_RESOLVED)


async def acknowledge(session: AsyncSession, alert_id: str, caller: Caller, now: datetime) -> AlertDetail:
    """Open → acknowledged (stops escalation). Acknowledging again changes nothing."""
    alert, notified = await _alert_for_action(session, alert_id, caller)
    decision = lifecycle.on_acknowledge(snapshot(alert), caller.body_id, notified=notified)
    _refuse(decision)
    if isinstance(decision, lifecycle.Acknowledge):
        alert.state = AlertState.acknowledged.value
        alert.acknowledged_at = now
        alert.acknowledged_by = decision.body_id
        alert.updated_at = now
        _publish(session, alert, "alert.acknowledged", now, trace_id=alert.trace_id, body_ids=[decision.body_id])
        await repository.flush(session)
        await announce_work(session)  # the outbox relays, at commit
    return await _detail(session, alert)


async def resolve(session: AsyncSession, alert_id: str, caller: Caller, *, outcome: Outcome, note: str,
                  now: datetime) -> AlertDetail:
    """Open or acknowledged → resolved, with the outcome and a note."""
    alert, notified = await _alert_for_action(session, alert_id, caller)
    decision = lifecycle.on_resolve(snapshot(alert), caller.body_id, notified=notified, outcome=outcome, note=note)
    _refuse(decision)
    if isinstance(decision, lifecycle.Close):
        alert.state = AlertState.resolved.value
        alert.resolved_at = now
        alert.resolved_by = decision.body_id
        alert.outcome = decision.outcome
        alert.note = decision.note
        alert.updated_at = now
        _publish(session, alert, "alert.resolved", now, trace_id=alert.trace_id, body_ids=[decision.body_id])
        await repository.flush(session)
        await announce_work(session)  # the outbox relays, at commit
    return await _detail(session, alert)


# --- views ---------------------------------------------------------------------------------------------------------


async def get_alert(session: AsyncSession, alert_id: str, caller: Caller) -> AlertDetail:
    """One alert with who was notified and why, its deliveries and escalations (admin, or a notified body)."""
    alert = await repository.get_alert(session, alert_id)
    if alert is None or not (caller.is_admin or await repository.was_notified(session, alert_id, caller.body_id or "")):
        raise NotFound(NO_SUCH_ALERT)
    return await _detail(session, alert)


async def list_alerts(session: AsyncSession, caller: Caller, *, state: AlertState | None, level: RiskLevel | None,
                      limit: int, offset: int) -> AlertPage:
    """A page of alerts, most severe first, then oldest first: a body sees those it was notified of, admin all.
    Four queries whatever the page size."""
    alerts = await repository.alerts_page(
        session, visible_to=caller.body_id, state=state.value if state else None,
        level=level.value if level else None, offset=offset, limit=limit + 1,
    )
    items = await alert_views(session, alerts[:limit])
    return AlertPage(items=items, next_cursor=str(offset + limit) if len(alerts) > limit else None)


async def _detail(session: AsyncSession, alert: Alert) -> AlertDetail:
    (view,) = await alert_views(session, [alert])
    deliveries = (await repository.deliveries_of(session, [alert.id])).get(alert.id, [])
    return AlertDetail(**view.model_dump(), deliveries=[_delivery_view(d) for d in deliveries])


async def alert_views(session: AsyncSession, alerts: Sequence[Alert]) -> list[AlertView]:
    """The alerts as the API shows them, with who was notified and the escalations: two queries for all of them."""
    if not alerts:
        return []
    ids = [alert.id for alert in alerts]
    notifications = await repository.notifications_of(session, ids)
    escalations = await repository.escalations_of(session, ids)
    return [_alert_view(alert, notifications.get(alert.id, []), escalations.get(alert.id, [])) for alert in alerts]


def _alert_view(alert: Alert, notified: Sequence[Notification], escalations: Sequence[Escalation]) -> AlertView:
    return AlertView(
        alert_id=alert.id, credit_code=alert.credit_code, kind=ReportKind(alert.kind), level=RiskLevel(alert.level),
        state=AlertState(alert.state), report_ids=list(alert.report_ids), enterprise_name=alert.enterprise_name,
        region_code=alert.region_code, score=alert.score,
        reasons=AssessmentView.model_validate(alert.assessment).reasons,
        opened_at=alert.opened_at, updated_at=alert.updated_at,
        ack_deadline=alert.ack_deadline if alert.state == AlertState.open.value else None,
        acknowledged_at=alert.acknowledged_at, resolved_at=alert.resolved_at, outcome=alert.outcome, note=alert.note,
        notified=[NotifiedView(body_id=n.body_id, at=n.at, reason=n.reason) for n in notified],
        escalations=[EscalationView(body_id=e.body_id, from_level=e.from_level, to_level=e.to_level, at=e.at)
                     for e in escalations],
    )


def _delivery_view(delivery: Delivery) -> DeliveryView:
    state = DeliveryState(delivery.state)
    return DeliveryView(
        delivery_id=delivery.id, body_id=delivery.body_id, event=delivery.event_type, channel=delivery.channel_type,
        state=state, attempts=delivery.attempts, last_status=delivery.last_status, last_error=delivery.last_error,
        next_attempt_at=delivery.next_attempt_at if state == DeliveryState.pending else None,
        delivered_at=delivery.delivered_at,
    )


# --- delivering ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AttemptOutcome:
    """What one attempt leads to: delivered, retried at `next_attempt_at`, failed at once (a permanent refusal) or
    abandoned after the retry window (both state failed)."""

    name: str  # delivered | retrying | failed | abandoned: the metric's outcome label
    state: DeliveryState
    next_attempt_at: datetime | None


def attempt_outcome(result: DeliveryResult, created_at: datetime, attempts: int, now: datetime,
                    settings: AlertsSettings) -> AttemptOutcome:
    """After attempt number `attempts`: done if it worked, else retry with backoff until the retry window ends."""
    if result.ok:
        return AttemptOutcome("delivered", DeliveryState.delivered, None)
    if result.permanent:  # the receiver refuses it for good: retrying for 48 h would only hide it
        return AttemptOutcome("failed", DeliveryState.failed, None)
    if should_give_up(created_at, now, attempts):
        return AttemptOutcome("abandoned", DeliveryState.failed, None)
    delay = next_delay(attempts, base=settings.retry_base_seconds, max_delay=settings.retry_max_seconds)
    return AttemptOutcome("retrying", DeliveryState.pending, now + timedelta(seconds=delay))


async def gauges(session: AsyncSession, now: datetime) -> tuple[dict[str, int], dict[str, int], int]:
    """Open alerts by level, overdue open alerts by level, pending deliveries."""
    return (await repository.open_alerts_by_level(session),
            await repository.open_alerts_by_level(session, overdue_at=now),
            await repository.pending_deliveries(session))


# --- delivering: the channel as it is at send time, many results per transaction -----------------------------------

BODY_INACTIVE = "机构已停用,推送取消 / The body was deactivated: delivery cancelled"
CHANNEL_GONE = "机构已删除该渠道,推送取消 / The body no longer has this channel: delivery cancelled"


def channel_record(channel: dict[str, Any]) -> dict[str, Any]:
    """What a delivery keeps of its channel, as a record only: everything but the secret."""
    return {key: value for key, value in channel.items() if key != "secret"}


async def cancel_deliveries_of_body(session: AsyncSession, body_id: str, now: datetime) -> int:
    """A deactivated body gets nothing more: its pending deliveries become `cancelled`."""
    return await repository.cancel_pending_deliveries_of_body(session, body_id, now, BODY_INACTIVE)


def channel_for(delivery: Delivery, body: Body | None) -> ChannelConfig | str:
    """The channel to send `delivery` through, read from its body now: a corrected URL or a rotated secret applies
    to every pending delivery. The channel at the delivery's position when it still has the same type, else the
    body's only channel of that type (rows queued before positions were kept, or a reordered list). A reason
    (zh / en) when there is none to send to: the body is gone or inactive, or the channel was removed.

    This is the one place where a delivery's target and secret are read."""
    if body is None or not body.active:
        return BODY_INACTIVE
    channels = body.channels
    index = delivery.channel_index
    if index is not None and 0 <= index < len(channels) and channels[index].get("type") == delivery.channel_type:
        raw = channels[index]
    else:
        same_type = [channel for channel in channels if channel.get("type") == delivery.channel_type]
        if len(same_type) != 1:
            return CHANNEL_GONE
        raw = same_type[0]
    return channel_config_adapter.validate_python(raw)


@dataclass(frozen=True)
class Claimed:
    """A leased delivery and the channel to send it through, read from its body in the claiming transaction."""

    delivery: Delivery
    channel: ChannelConfig


async def claim_for_sending(session: AsyncSession, now: datetime, limit: int,
                            settings: AlertsSettings) -> tuple[list[Claimed], list[Delivery]]:
    """Lease up to `limit` due deliveries with their channels; those with nothing to send to are cancelled in the
    same transaction (returned second)."""
    lease = now + timedelta(seconds=settings.delivery_lease_seconds)
    deliveries = await repository.claim_due_deliveries(session, now, lease, limit)
    bodies = await repository.bodies_by_id(session, (delivery.body_id for delivery in deliveries))
    claimed: list[Claimed] = []
    cancelled: dict[str, list[Delivery]] = {}
    for delivery in deliveries:
        channel = channel_for(delivery, bodies.get(delivery.body_id))
        if isinstance(channel, str):
            cancelled.setdefault(channel, []).append(delivery)
        else:
            claimed.append(Claimed(delivery, channel))
    for reason, rows in cancelled.items():
        await repository.cancel_deliveries(session, [row.id for row in rows], now, reason)
    return claimed, [row for rows in cancelled.values() for row in rows]


@dataclass(frozen=True)
class Attempted:
    """One finished attempt, waiting to be stored with others."""

    delivery: Delivery
    result: DeliveryResult
    outcome: AttemptOutcome
    at: datetime


@dataclass(frozen=True)
class FirstDelivery:
    """An alert delivered for the first time: when its report was accepted and the alert opened."""

    alert_id: str
    accepted_at: datetime
    opened_at: datetime


async def record_attempts(session: AsyncSession, attempts: Sequence[Attempted], deferred: Sequence[Delivery],
                          defer_until: datetime, now: datetime) -> list[FirstDelivery]:
    """Store many attempts in one go (and put `deferred` ones back unsent); the alerts delivered for the first time."""
    by_kind: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    for attempt in attempts:
        delivered = attempt.outcome.state == DeliveryState.delivered
        by_kind[delivered].append({
            "b_id": attempt.delivery.id, "b_attempts": attempt.delivery.attempts + 1,
            "b_last_attempt_at": attempt.at, "b_last_status": attempt.result.status,
            "b_last_error": attempt.result.error, "b_state": attempt.outcome.state.value,
            "b_next_attempt_at": attempt.outcome.next_attempt_at or attempt.at,
            "b_delivered_at": attempt.at if delivered else None,
        })
    await repository.record_attempts(session, by_kind[True], delivered=True)
    await repository.record_attempts(session, by_kind[False], delivered=False)
    await repository.defer_deliveries(session, [delivery.id for delivery in deferred], defer_until)
    firsts = await repository.set_first_delivered_many(
        session, [attempt.delivery.alert_id for attempt in attempts if attempt.result.ok], now)
    return [FirstDelivery(alert_id, accepted_at, opened_at) for alert_id, accepted_at, opened_at in firsts]


async def announce_work(session: AsyncSession) -> None:
    """Tell every replica, at commit, that deliveries or outbox rows were queued (PostgreSQL NOTIFY)."""
    await repository.notify_work(session)
