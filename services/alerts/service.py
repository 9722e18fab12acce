"""The alerts service's business steps: apply the lifecycle's decisions (`lifecycle.py`) through the repository —
each change stored with the bodies to notify, the deliveries to make and the `alerts.v1` event to publish — and
the bodies directory. Flush only: the caller's transaction (a request, a Kafka batch, a worker tick) commits.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import csv
import io
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from cryptography.fernet import MultiFernet
from pydantic_core import to_json
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts import lifecycle, messages, receipts, repository, timeline
from services.alerts.backoff import next_delay, should_give_up
from services.alerts.channel_secrets import (
    ENCRYPTED_FIELD,
    SECRET_FIELD,
    SecretUnreadable,
    channel_secret,
    cipher_for,
    public_channel,
    reseal_channel,
    seal_channel,
    unseal_channel,
)
from services.alerts.channels import ChannelConfig, DeliveryResult, EmailChannel, channel_config_adapter
from services.alerts.lifecycle import AlertSnapshot, Assessed, Policy
from services.alerts.messages import DEFAULT_LANGUAGE, MessageLanguage
from services.alerts.metrics import ALERTS_LEVEL_RAISED, ALERTS_OPENED, ESCALATIONS, SCREENING_NOTICES
from services.alerts.models import (
    Acknowledgement,
    Alert,
    AssessedReport,
    Body,
    Delivery,
    DeliveryKind,
    DeliveryState,
    Escalation,
    Notification,
    OutboxMessage,
    ScreeningAnswer,
    ScreeningCoverage,
)
from services.alerts.routing import BodyKind, BodyLevel, BodyRef, resolve_pair
from services.alerts.schemas import (
    AcknowledgementPayload,
    AcknowledgementView,
    AlertDetail,
    AlertFilters,
    AlertPage,
    AlertView,
    AssessmentView,
    BodyCreate,
    BodyCreated,
    BodyToken,
    BodyUpdate,
    BodyView,
    CountyCoverage,
    CoveragePage,
    DeliveryView,
    EnterpriseView,
    EscalationView,
    LevelCounts,
    MeView,
    NoticeCounty,
    NoticeRound,
    NotifiedView,
    OpenAlertCounts,
    Outcome,
    OwnerAssign,
    OwnerNamedEntry,
    OwnerView,
    ReceiptForm,
    ReceiptStatus,
    ReceiptView,
    ReportDetail,
    RoundCoverage,
    RoundState,
    ScreeningNoticePayload,
    ScreeningNoticeView,
    ScreeningUnitView,
    Situation,
    SituationCounty,
    SituationIndustry,
    SituationRegion,
    SituationWeek,
    VisitEntry,
    VisitRecord,
    VisitView,
    WatchedEnterpriseView,
    WatchlistPage,
    WebhookAlert,
    WebhookMessage,
    WebhookPayload,
)
from services.alerts.settings import AlertsSettings
from services.alerts.targets import check_target
from services.alerts.working_time import AckDeadline
from shared import regions
from shared.auth import Caller, hash_token, new_token
from shared.db import SessionFactory
from shared.events import (
    AlertChanged,
    AlertState,
    Reason,
    ReportAssessed,
    RiskLevel,
    ScreeningEvent,
    ScreeningReturnSubmitted,
    ScreeningRoundDue,
    ScreeningRoundOpened,
    ScreeningStatus,
    Topic,
    utcnow,
)
from shared.http import ApiError, Conflict, Forbidden, InvalidInput, NotFound
from shared.labels import INDUSTRIES, label
from shared.outbox import outbox_row, outbox_values
from shared.report import KIND_BLOCKS, Report, ReportKind

log = logging.getLogger(__name__)

NO_SUCH_ALERT = "没有该预警 / No such alert"
NO_SUCH_BODY = "没有该机构 / No such body"
ONLY_NOTIFIED = "只有收到预警的机构可以确认或办结 / Only a notified body can acknowledge or resolve an alert"
ALREADY_RESOLVED = "该预警已办结 / The alert is already resolved"
ADMIN_IS_NO_BODY = "管理员令牌不属于任何机构 / The admin token belongs to no body"


# --- bodies --------------------------------------------------------------------------------------------------------


def body_view(body: Body) -> BodyView:
    return BodyView(
        body_id=body.id, name=body.name, kind=body.kind, level=body.level, region_code=body.region_code,
        channels=[public_channel(channel) for channel in body.channels],
        active=body.active, created_at=body.created_at, language=_language(body),
    )


def _language(body: Body) -> MessageLanguage:
    """The body's language; a value this version does not know (never written by it) reads as the default."""
    return body.language if body.language in messages.LANGUAGES else DEFAULT_LANGUAGE


async def stored_channels(channels: Sequence[ChannelConfig], settings: AlertsSettings) -> list[dict[str, Any]]:
    """Channels as the API received them, checked and in their stored form: every target allowed
    (`targets.check_target`: official robot hosts, webhooks to public addresses unless private targets are
    allowed), secrets sealed (`channel_secrets`). A refused target is a 422 naming `channels.<n>.url`."""
    allow_private = settings.private_targets_allowed
    reasons = await asyncio.gather(*(
        check_target(channel.url, allow_private=allow_private, channel_type=channel.type)
        for channel in channels if not isinstance(channel, EmailChannel)
    ))
    with_url = [index for index, channel in enumerate(channels) if not isinstance(channel, EmailChannel)]
    problems = [("body", f"channels.{index}.url", "target_refused", reason)
                for index, reason in zip(with_url, reasons, strict=True) if reason is not None]
    if problems:
        raise InvalidInput(problems)
    cipher = settings.channel_cipher()
    return [seal_channel(channel.model_dump(exclude_none=True), cipher) for channel in channels]


def body_ref(body: Body) -> BodyRef:
    return BodyRef(body_id=body.id, kind=BodyKind(body.kind), level=BodyLevel(body.level),
                   region_code=body.region_code)


async def create_body(session: AsyncSession, payload: BodyCreate, now: datetime,
                      settings: AlertsSettings) -> BodyCreated:
    """Register a body with its channels; its token is returned once and stored only as a hash."""
    channels = await stored_channels(payload.channels, settings)
    token = new_token("body")
    body = Body(id=str(uuid.uuid4()), name=payload.name, kind=payload.kind.value, level=payload.level.value,
                region_code=payload.region_code, channels=channels,
                token_hash=hash_token(token), active=True, created_at=now, updated_at=now,
                language=payload.language)
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


async def get_me(session: AsyncSession, caller: Caller) -> MeView:
    """The body the caller's token belongs to (the admin token belongs to none: 404)."""
    if caller.body_id is None:
        raise NotFound(ADMIN_IS_NO_BODY)
    body = await repository.get_body(session, caller.body_id)
    if body is None:
        raise NotFound(NO_SUCH_BODY)
    return MeView(body_id=body.id, name=body.name, kind=body.kind, level=body.level, region_code=body.region_code,
                  language=_language(body))


async def update_body(session: AsyncSession, body_id: str, payload: BodyUpdate, now: datetime,
                      settings: AlertsSettings) -> BodyView:
    channels = await stored_channels(payload.channels, settings) if payload.channels is not None else None
    body = await repository.get_body(session, body_id, for_update=True)
    if body is None:
        raise NotFound(NO_SUCH_BODY)
    if payload.name is not None:
        body.name = payload.name
    if channels is not None:
        body.channels = channels
    if payload.active is not None:
        body.active = payload.active
    if payload.language is not None:
        body.language = payload.language
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


async def rotate_token(session: AsyncSession, body_id: str, now: datetime) -> BodyToken:
    """A new token for the body, returned once; the old one is refused from this transaction's commit on. Issuing
    a token also reactivates a body whose token was revoked (the admin's way back)."""
    body = await repository.get_body(session, body_id, for_update=True)
    if body is None:
        raise NotFound(NO_SUCH_BODY)
    token = new_token("body")
    body.token_hash = hash_token(token)
    body.active = True
    body.updated_at = now
    await repository.flush(session)
    return BodyToken(body_id=body.id, token=token)


async def revoke_token(session: AsyncSession, body_id: str, now: datetime) -> None:
    """Revoke the body's token: the body is deactivated (as `deactivate_body`) and its token replaced by one
    nobody knows, so that reactivating it later does not bring the old token back."""
    await deactivate_body(session, body_id, now)
    body = await repository.get_body(session, body_id)
    assert body is not None
    body.token_hash = hash_token(new_token("revoked"))
    await repository.flush(session)


# --- consuming assessments -----------------------------------------------------------------------------------------


def snapshot(alert: Alert) -> AlertSnapshot:
    """The lifecycle's view of an alert row."""
    return AlertSnapshot(
        level=RiskLevel(alert.level), state=AlertState(alert.state), report_ids=tuple(alert.report_ids),
        updated_at=alert.updated_at, region_code=alert.region_code, deadline_seconds=alert.deadline_seconds,
        ack_deadline=alert.ack_deadline, escalation_exhausted=alert.escalation_exhausted,
        highest_union_level=BodyLevel(alert.highest_union_level) if alert.highest_union_level else None,
    )


@dataclass
class _Notice:
    """A notifying decision of a batch (an alert opened or raised): the alert as it was then, who is told, and the
    notifications of the alert made in the batch up to this one included (the payload lists them after those in
    the database)."""

    alert: Alert
    bodies: list[Body]
    reason: str
    event_type: str
    earlier: list[Notification]
    existing: bool


@dataclass
class _Batch:
    """What a batch of assessments changes, collected in memory and then written with one statement per table."""

    policy: Policy
    now: datetime
    bodies: dict[str, Body]
    current: dict[tuple[str, str], Alert | None]
    loaded_ids: set[str]
    changed: dict[str, Alert] = field(default_factory=dict)
    opened: dict[str, Alert] = field(default_factory=dict)
    notifications: dict[str, list[Notification]] = field(default_factory=lambda: defaultdict(list))
    notices: list[_Notice] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    lease: SendLease | None = None

    def touch(self, alert: Alert) -> None:
        if alert.id in self.loaded_ids:
            self.changed[alert.id] = alert

    def publish(self, alert: Alert, event_type: str, *, trace_id: str, report_id: str | None = None,
                body_ids: Sequence[str] = ()) -> None:
        event = _alert_changed(alert, event_type, self.now, trace_id=trace_id, report_id=report_id,
                               body_ids=body_ids)
        self.outbox.append(outbox_values(Topic.alerts.value, event, self.now))

    def notify(self, alert: Alert, targets: Sequence[BodyRef], *, reason: str, event_type: str) -> list[str]:
        bodies = [self.bodies[ref.body_id] for ref in targets]
        made = [Notification(alert_id=alert.id, body_id=body.id, reason=reason, event_type=event_type, at=self.now)
                for body in bodies]
        self.notifications[alert.id].extend(made)
        self.notices.append(_Notice(alert=_copy(alert), bodies=bodies, reason=reason, event_type=event_type,
                                    earlier=list(self.notifications[alert.id]),
                                    existing=alert.id in self.loaded_ids))
        return [body.id for body in bodies]


def _key(event: ReportAssessed) -> tuple[str, str]:
    return event.report.enterprise.credit_code, event.report.kind.value


def _assessed(event: ReportAssessed) -> Assessed:
    return Assessed(report_id=event.report_id, level=event.level, report=event.report,
                    ack_deadline_seconds=event.ack_deadline_seconds, replay=event.replay)


async def handle_assessed_batch(session: AsyncSession, events: Sequence[ReportAssessed], policy: Policy,
                                now: datetime, lease: SendLease | None = None,
                                ) -> list[tuple[ReportAssessed, list[str]]]:
    """Apply a batch of assessments (in their order) with a fixed number of statements, whatever the batch's size:
    the events recorded (copies dropped), their reports stored, the unresolved alerts of their (credit_code, kind)
    keys loaded and locked in key order, the covering bodies loaded once; then the lifecycle decides report after
    report in memory (two reports of one enterprise in a batch join the same alert), and alerts, notifications,
    deliveries and outbox rows are written with one multi-row statement each. Returns every event with the ids of
    the alerts it changed (none for a copy or a what-if re-score).

    With a `lease` (the delivery worker of this process has room), the new deliveries are stored already leased to
    this process and collected in it, to be sent straight after the commit (`SendLease`)."""
    fresh_ids = await repository.mark_processed_many(session, [str(event.event_id) for event in events], now)
    results: list[tuple[ReportAssessed, list[str]]] = [(event, []) for event in events]
    fresh: list[tuple[int, ReportAssessed]] = []
    for position, event in enumerate(events):
        if str(event.event_id) in fresh_ids:
            fresh_ids.discard(str(event.event_id))  # an event twice in one batch counts once
            if not event.replay:  # a what-if re-score: recorded by risk, notifies nobody here
                fresh.append((position, event))
    if not fresh:
        return results
    await repository.record_assessed_reports(session, [assessed_report_row(event) for _, event in fresh])
    loaded = await repository.unresolved_alerts_for_update(session, [_key(event) for _, event in fresh])
    # The provinces whose bodies a decision may route to: a report that may open or raise an alert, judged against
    # the alerts as they were before the batch (a superset of what deciding in order needs).
    provinces = sorted({event.report.region_code[:2] for _, event in fresh if lifecycle.needs_targets(
        None if (alert := loaded.get(_key(event))) is None else snapshot(alert), _assessed(event), now, policy)})
    bodies = await repository.active_bodies_in_provinces(session, provinces)
    refs: dict[str, list[BodyRef]] = defaultdict(list)
    for body in bodies.values():
        refs[body.region_code[:2]].append(body_ref(body))
    batch = _Batch(policy=policy, now=now, bodies=bodies, current=dict(loaded),
                   loaded_ids={alert.id for alert in loaded.values()}, lease=lease)
    for position, event in fresh:
        results[position] = (event, _decide(batch, event, refs[event.report.region_code[:2]]))
    await _write(session, batch)
    return results


def _decide(batch: _Batch, event: ReportAssessed, refs: Sequence[BodyRef]) -> list[str]:
    """One assessment against its key's alert as the batch has left it so far; the ids of the alerts it changed."""
    key = _key(event)
    alert = batch.current.get(key)
    decision = lifecycle.on_assessment(None if alert is None else snapshot(alert), _assessed(event), refs,
                                       batch.now, batch.policy)
    match decision:
        case lifecycle.Ignore():
            return []
        case lifecycle.Open():
            return [_open(batch, event, decision)]
        case lifecycle.Join():
            assert alert is not None
            _add_report(alert, event, batch.now)
            batch.touch(alert)
            return [alert.id]
        case lifecycle.RaiseLevel():
            assert alert is not None
            _raise(batch, alert, event, decision)
            return [alert.id]
        case lifecycle.Expire():
            assert alert is not None
            _close_expired(batch, alert)
            batch.current[key] = None
            if decision.then is None:
                return []
            return [_open(batch, event, decision.then)]
    raise AssertionError(f"unhandled decision {decision!r}")


def _open(batch: _Batch, event: ReportAssessed, decision: lifecycle.Open) -> str:
    report, now = event.report, batch.now
    alert = Alert(
        id=str(uuid.uuid4()), credit_code=report.enterprise.credit_code, kind=report.kind.value,
        level=decision.level.value, state=AlertState.open.value, report_ids=[event.report_id],
        trace_id=event.trace_id, enterprise_name=report.enterprise.name, region_code=report.region_code,
        score=event.score, report=report.model_dump(mode="json"), assessment=_assessment(event),
        first_accepted_at=event.accepted_at, opened_at=now, updated_at=now,
        deadline_seconds=event.ack_deadline_seconds, escalation_exhausted=False,
        highest_union_level=decision.highest_union_level.value if decision.highest_union_level else None,
        acknowledged_at=None, acknowledged_by=None, resolved_at=None, resolved_by=None, outcome=None, note=None,
        first_delivered_at=None, owner=None, casework=[],
    )
    _set_deadline(alert, decision.deadline)
    batch.current[_key(event)] = alert
    batch.opened[alert.id] = alert
    body_ids = batch.notify(alert, decision.targets, reason="routing", event_type="alert.opened")
    batch.publish(alert, "alert.opened", trace_id=event.trace_id, report_id=event.report_id, body_ids=body_ids)
    ALERTS_OPENED.labels(level=alert.level).inc()
    return alert.id


def _add_report(alert: Alert, event: ReportAssessed, now: datetime) -> None:
    alert.report_ids = [*alert.report_ids, event.report_id]
    alert.updated_at = now


def _raise(batch: _Batch, alert: Alert, event: ReportAssessed, decision: lifecycle.RaiseLevel) -> None:
    """The alert takes the higher level, needs acknowledging again, and every target of the new level hears."""
    _add_report(alert, event, batch.now)
    alert.level = decision.level.value
    alert.score = event.score
    alert.report = event.report.model_dump(mode="json")
    alert.assessment = _assessment(event)
    alert.state = AlertState.open.value
    alert.deadline_seconds = event.ack_deadline_seconds
    _set_deadline(alert, decision.deadline)
    alert.escalation_exhausted = False
    alert.highest_union_level = decision.highest_union_level.value if decision.highest_union_level else None
    batch.touch(alert)
    body_ids = batch.notify(alert, decision.targets, reason="level_raised", event_type="alert.level_raised")
    batch.publish(alert, "alert.level_raised", trace_id=event.trace_id, report_id=event.report_id,
                  body_ids=body_ids)
    ALERTS_LEVEL_RAISED.labels(level=alert.level).inc()


def _close_expired(batch: _Batch, alert: Alert) -> None:
    alert.state = AlertState.resolved.value
    alert.resolved_at = batch.now
    alert.outcome = lifecycle.EXPIRED_OUTCOME
    alert.note = batch.policy.expired_note()
    alert.updated_at = batch.now
    batch.touch(alert)
    batch.publish(alert, "alert.resolved", trace_id=alert.trace_id)


def _copy(alert: Alert) -> Alert:
    """A detached copy of the alert as it is now: the payload of a notice shows the alert as it was then, even when
    a later report of the same batch changes it again."""
    return Alert(**{name: getattr(alert, name) for name in repository.ALERT_COLUMNS})


async def _write(session: AsyncSession, batch: _Batch) -> None:
    """Store what the batch decided: existing alerts updated first (an expired one is resolved before its
    successor is inserted: one unresolved alert per key), then new alerts, notifications (their inbox entries
    follow by trigger), deliveries with their payloads, and the outbox rows in decision order."""
    existing = sorted({notice.alert.id for notice in batch.notices if notice.existing})
    # Read before this batch's notifications are stored: the payloads list those made before, in the database
    # and in the batch so far.
    notified = await repository.notified_of(session, existing) if existing else {}
    escalations = await repository.escalations_of(session, existing) if existing else {}
    confirmations = await repository.acknowledgements_of(session, existing) if existing else {}
    await repository.update_alerts(session, list(batch.changed.values()))
    await repository.insert_alerts(session, list(batch.opened.values()))
    await repository.insert_notifications(session, [
        {"alert_id": n.alert_id, "body_id": n.body_id, "reason": n.reason, "event_type": n.event_type, "at": n.at}
        for made in batch.notifications.values() for n in made])
    deliveries: list[dict[str, Any]] = []
    for notice in batch.notices:
        if not notice.bodies:
            continue
        alert = notice.alert
        names = [(n, batch.bodies[n.body_id].name) for n in notice.earlier]
        view = _alert_view(alert, [*notified.get(alert.id, []), *names], escalations.get(alert.id, []),
                           confirmed={a.body_id for a, _ in confirmations.get(alert.id, []) if a.level == alert.level})
        payloads = _payloads(view, alert, notice.bodies, notice.event_type, batch.policy, batch.now)
        deliveries += [
            delivery_row(alert.id, body, notice.event_type, index, channel, payloads[body.id], batch.now)
            for body in notice.bodies for index, channel in enumerate(body.channels)
        ]
    if batch.lease is not None:
        batch.lease.take(deliveries, batch.bodies)
    await repository.insert_deliveries(session, deliveries)
    await repository.insert_outbox(session, batch.outbox)


def delivery_row(alert_id: str, body: Body, event_type: str, index: int, channel: dict[str, Any], payload: str,
                 now: datetime) -> dict[str, Any]:
    """A new pending delivery of an alert's change to one channel of a body, as a row to insert."""
    return {
        "id": str(uuid.uuid4()), "alert_id": alert_id, "kind": DeliveryKind.alert.value, "subject": None,
        "body_id": body.id, "event_type": event_type, "channel_type": channel["type"],
        "channel": channel_record(channel), "channel_index": index, "payload": payload,
        "state": DeliveryState.pending.value, "attempts": 0, "created_at": now, "next_attempt_at": now,
    }


def _set_deadline(alert: Alert, deadline: AckDeadline | None) -> None:
    """Store the acknowledgement deadline: the timer escalation waits for (`ack_deadline`, scaled by
    ACK_DEADLINE_SCALE), the working-time deadline shown (`ack_deadline_working`) and the rule that set it."""
    alert.ack_deadline = None if deadline is None else deadline.due_at
    alert.ack_deadline_working = None if deadline is None else deadline.working_due_at
    alert.ack_deadline_rule = None if deadline is None else deadline.rule


def _assessment(event: ReportAssessed) -> dict[str, Any]:
    return AssessmentView(
        report_id=event.report_id, score=event.score, level=event.level, rubric_version=event.rubric_version,
        assessed_at=event.assessed_at.isoformat(), reasons=list(event.reasons),
    ).model_dump(mode="json")


# --- assessed reports ----------------------------------------------------------------------------------------------

_DETAIL_FIELDS = ("petition", "online_exposure", "new_employment_form", "extreme_threat", "summary")


def assessed_report_row(event: ReportAssessed) -> dict[str, Any]:
    """The `assessed_reports` row of one assessment: the report's searchable columns, its kind's block and the
    circumstances in `details`, and the reasons."""
    report = event.report
    block = KIND_BLOCKS[report.kind]
    details: dict[str, Any] = report.model_dump(mode="json", include={*_DETAIL_FIELDS, block})
    details["collective_action"] = sorted(action.value for action in report.collective_action)
    details["ownership"] = report.enterprise.ownership.value
    return {
        "report_id": event.report_id, "credit_code": report.enterprise.credit_code,
        "enterprise_name": report.enterprise.name, "industry": report.enterprise.industry,
        "kind": report.kind.value, "region_code": report.region_code, "city_code": report.region_code[:4] + "00",
        "level": event.level.value, "score": event.score, "rubric_version": event.rubric_version,
        "occurred_at": report.occurred_at, "accepted_at": event.accepted_at, "assessed_at": event.assessed_at,
        "workers_involved": report.workers_involved, "migrant_workers_involved": report.migrant_workers_involved,
        "details": details, "reasons": [reason.model_dump(mode="json") for reason in event.reasons],
    }



# --- notifying -----------------------------------------------------------------------------------------------------


async def _notify(session: AsyncSession, alert: Alert, bodies: Sequence[Body], *, reason: str, event_type: str,
                  policy: Policy, now: datetime) -> None:
    """Record who is told and queue one delivery per channel, each carrying the same webhook payload."""
    repository.add(session, *(Notification(alert_id=alert.id, body_id=body.id, reason=reason,
                                           event_type=event_type, at=now) for body in bodies))
    await repository.flush(session)
    if not bodies:
        return
    (view,) = await alert_views(session, [alert])
    payloads = _payloads(view, alert, bodies, event_type, policy, now)
    repository.add(session, *(
        Delivery(id=str(uuid.uuid4()), alert_id=alert.id, body_id=body.id, event_type=event_type,
                 channel_type=channel["type"], channel=channel_record(channel), channel_index=index,
                 payload=payloads[body.id],
                 state=DeliveryState.pending.value, attempts=0, created_at=now, next_attempt_at=now)
        for body in bodies for index, channel in enumerate(body.channels)
    ))


def _payloads(view: AlertView, alert: Alert, bodies: Sequence[Body], event_type: str, policy: Policy,
              now: datetime) -> dict[str, str]:
    """The exact JSON each body gets for this change: the payload in its language, with its own receipt link."""
    by_language = {language: ReceiptSplice.of(_payload_in(view, alert, event_type, policy, language))
                   for language in {_language(body) for body in bodies}}  # one per language among the bodies told
    level = RiskLevel(alert.level)
    return {body.id: by_language[_language(body)].with_link(policy.receipt_url(alert.id, body.id, level, now))
            for body in bodies}


async def webhook_payload(session: AsyncSession, alert: Alert, event_type: str, policy: Policy,
                          language: MessageLanguage = DEFAULT_LANGUAGE) -> WebhookPayload:
    """What every delivery of this change to a body reading `language` carries: the event, the alert (with the
    inbox link), the report behind its level, its assessment, and the notification as text in that language."""
    (view,) = await alert_views(session, [alert])
    return _payload_in(view, alert, event_type, policy, language)


def _payload_in(view: AlertView, alert: Alert, event_type: str, policy: Policy,
                language: MessageLanguage) -> WebhookPayload:
    alert_fields = view.model_dump() | {"ack_deadline_rule_text": _rule_text(view.ack_deadline_rule, language)}
    payload = WebhookPayload(
        event=event_type, language=language,
        alert=WebhookAlert(**alert_fields, inbox_url=policy.inbox_url, url=policy.alert_url(alert.id),
                           receipt_url=None),
        report=alert.report, assessment=AssessmentView.model_validate(alert.assessment),
    )
    # Read once for both texts (each would validate the dumped payload again): the consumer builds one per change
    # and language.
    message = messages.message_input(payload.model_dump(mode="json"))
    payload.message = WebhookMessage(title=messages.title(message), markdown=messages.markdown(message))
    return payload


def _rule_text(rule: str | None, language: MessageLanguage = DEFAULT_LANGUAGE) -> str | None:
    """The deadline rule in words (`shared.labels`): `中文 / English`, or one of them for a body reading only it."""
    if rule is None:
        return None
    text = label("deadline_rule", rule)
    return text.zh if language == "zh" else text.en if language == "en" else text.both


@dataclass(frozen=True)
class ReceiptSplice:
    """A webhook payload serialised once, cut where `alert.receipt_url` goes: each body's JSON is the two halves
    around its own link's JSON value. The text is byte for byte `payload.model_dump_json()` with that link set (the
    bytes a receiver checks the signature against), without copying and serialising the whole payload per body
    (13 % of the alerts consumer's samples at 200 reports/s went to that)."""

    head: str
    tail: str

    @classmethod
    def of(cls, payload: WebhookPayload) -> ReceiptSplice:
        # A placeholder no payload text can contain (fresh random hex), serialised by pydantic like the link: the
        # JSON string it becomes is found exactly once, and nothing else of the text depends on the link.
        marker = f"receipt-url-{uuid.uuid4().hex}"
        text = with_receipt_link(payload, marker).model_dump_json()
        head, found, tail = text.partition(to_json(marker).decode())
        if not found or found in tail:
            raise AssertionError("the receipt link's placeholder must appear once in the payload")
        return cls(head, tail)

    def with_link(self, link: str | None) -> str:
        """The payload's JSON with `alert.receipt_url` = `link` (serialised as pydantic serialises a `str | None`)."""
        return f"{self.head}{to_json(link).decode()}{self.tail}"


def with_receipt_link(payload: WebhookPayload, link: str | None) -> WebhookPayload:
    """The payload as one body gets it: with its own one-click receipt link."""
    return payload.model_copy(update={"alert": payload.alert.model_copy(update={"receipt_url": link})})


def _publish(session: AsyncSession, alert: Alert, event_type: str, now: datetime, *, trace_id: str,
             report_id: str | None = None, body_ids: Sequence[str] = ()) -> None:
    event = _alert_changed(alert, event_type, now, trace_id=trace_id, report_id=report_id, body_ids=body_ids)
    repository.add(session, outbox_row(OutboxMessage, Topic.alerts.value, event, now))


def _alert_changed(alert: Alert, event_type: str, now: datetime, *, trace_id: str, report_id: str | None = None,
                   body_ids: Sequence[str] = ()) -> AlertChanged:
    """The `alerts.v1` event of a change of the alert, as the alert is now."""
    return AlertChanged(
        trace_id=trace_id, occurred_at=now, event_type=event_type, alert_id=alert.id,
        credit_code=alert.credit_code, kind=ReportKind(alert.kind), level=RiskLevel(alert.level),
        state=AlertState(alert.state), report_ids=list(alert.report_ids), report_id=report_id,
        body_ids=list(body_ids),
    )


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
                _set_deadline(alert, decision.deadline)
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


async def acknowledge(session: AsyncSession, alert_id: str, caller: Caller, payload: AcknowledgementPayload,
                      policy: Policy, now: datetime) -> AlertDetail:
    """The caller's body confirms receipt (the person's name, an optional note). The first union or mediation
    centre to confirm makes the alert acknowledged (escalation stops); a body's repeat changes nothing."""
    if caller.is_admin:
        raise Forbidden(ONLY_NOTIFIED)
    assert caller.body_id is not None
    alert = await repository.get_alert(session, alert_id, for_update=True)
    if alert is None:
        raise NotFound(NO_SUCH_ALERT)
    body = await repository.notified_body(session, alert_id, caller.body_id)
    _refuse(await _confirm(session, alert, caller.body_id, body, person=payload.person, note=payload.note,
                           via="api", now=now))
    return await _detail(session, alert, policy)


async def _confirm(session: AsyncSession, alert: Alert, body_id: str, body: Body | None, *, person: str,
                   note: str | None, via: str, now: datetime) -> lifecycle.ActionDecision:
    """Record `body_id`'s receipt as the lifecycle decides (`body` is None when it was not notified); the alert
    locked by the caller. Returns the decision for the caller to refuse or report."""
    confirmed = frozenset() if body is None else await repository.confirmed_bodies(session, alert.id, alert.level)
    decision = lifecycle.on_acknowledge(replace(snapshot(alert), confirmed_by=confirmed), body_id,
                                        notified=body is not None,
                                        body_kind=BodyKind(body.kind) if body is not None else None)
    if isinstance(decision, lifecycle.Acknowledge):
        repository.add(session, Acknowledgement(alert_id=alert.id, body_id=decision.body_id, level=alert.level,
                                                person=person, note=note or None, via=via, at=now))
        alert.updated_at = now
        if decision.stops_escalation:
            alert.state = AlertState.acknowledged.value
            alert.acknowledged_at = now
            alert.acknowledged_by = decision.body_id
            _publish(session, alert, "alert.acknowledged", now, trace_id=alert.trace_id,
                     body_ids=[decision.body_id])
        await repository.flush(session)
        await announce_work(session)  # the outbox relays, at commit
    return decision


async def resolve(session: AsyncSession, alert_id: str, caller: Caller, *, outcome: Outcome, note: str,
                  policy: Policy, now: datetime) -> AlertDetail:
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
    return await _detail(session, alert, policy)


# --- one-click receipt links (receipts.py) --------------------------------------------------------------------------


async def receipt(session: AsyncSession, token: str, policy: Policy, now: datetime) -> ReceiptView:
    """What the receipt link shows (`GET /r/{token}`): the form, or why the link no longer works. Reading it
    records nothing: mail scanners and link previews fetch links."""
    target = await _receipt_target(session, token, policy, now, lock=False)
    return target if isinstance(target, ReceiptView) else target[2]


async def confirm_receipt(session: AsyncSession, token: str, form: ReceiptForm, policy: Policy,
                          now: datetime) -> ReceiptView:
    """Record the receipt of the link's body, exactly as `POST /v1/alerts/{id}/ack` would (`POST /r/{token}`)."""
    target = await _receipt_target(session, token, policy, now, lock=True)
    if isinstance(target, ReceiptView):
        return target
    alert, body, view = target
    decision = await _confirm(session, alert, body.id, body, person=form.person, note=None, via="link", now=now)
    match decision:
        case lifecycle.Acknowledge():
            return view.model_copy(update={"status": ReceiptStatus.confirmed, "person": form.person, "at": now})
        case lifecycle.AlreadyDone():  # unreachable while the alert is locked, kept for the decision's sake
            return view.model_copy(update={"status": ReceiptStatus.used})
        case lifecycle.Conflict():
            return view.model_copy(update={"status": ReceiptStatus.resolved})
    return ReceiptView(status=ReceiptStatus.invalid)


async def _receipt_target(session: AsyncSession, token: str, policy: Policy, now: datetime, *,
                          lock: bool) -> ReceiptView | tuple[Alert, Body, ReceiptView]:
    """The alert and body a working link names, with the page's view; or the view saying why it does not work."""
    claim = receipts.verify(policy.link_secret, token, now)
    if isinstance(claim, receipts.TokenProblem):
        return ReceiptView(status=ReceiptStatus(claim.value))
    alert = await repository.get_alert(session, claim.alert_id, for_update=lock)
    body = None if alert is None else await repository.notified_body(session, claim.alert_id, claim.body_id)
    if alert is None or body is None or not body.active:
        return ReceiptView(status=ReceiptStatus.invalid)  # genuine, but for nothing this service knows now
    view = ReceiptView(status=ReceiptStatus.ready, alert_id=alert.id, enterprise_name=alert.enterprise_name,
                       kind=ReportKind(alert.kind), level=RiskLevel(alert.level), region_code=alert.region_code,
                       body_name=body.name, url=policy.alert_url(alert.id))
    if alert.state == AlertState.resolved.value:
        return view.model_copy(update={"status": ReceiptStatus.resolved})
    existing = await repository.acknowledgement(session, alert.id, body.id, claim.level.value)
    if existing is not None:
        return view.model_copy(update={"status": ReceiptStatus.used, "person": existing.person, "at": existing.at})
    if claim.level != RiskLevel(alert.level):
        return view.model_copy(update={"status": ReceiptStatus.superseded})
    return alert, body, view


# --- views ---------------------------------------------------------------------------------------------------------


async def get_alert(session: AsyncSession, alert_id: str, caller: Caller, policy: Policy) -> AlertDetail:
    """One alert with who was notified and why, its deliveries and escalations (admin, or a notified body)."""
    alert = await repository.get_alert(session, alert_id)
    if alert is None:
        raise NotFound(NO_SUCH_ALERT)
    return await _detail(session, alert, policy, visible_to=None if caller.is_admin else caller.body_id or "")


async def _detail(session: AsyncSession, alert: Alert, policy: Policy, *,
                  visible_to: str | None = None) -> AlertDetail:
    """The alert's detail; for a body (`visible_to`) only if it was notified (read from the notifications the
    detail loads anyway, so visibility costs no query of its own)."""
    views, acknowledgements = await _views(session, [alert])
    view = views[0]
    if visible_to is not None and all(n.body_id != visible_to for n in view.notified):
        raise NotFound(NO_SUCH_ALERT)
    deliveries = (await repository.deliveries_of(session, [alert.id])).get(alert.id, [])
    reports = _report_details(alert, await repository.assessed_reports(session, alert.report_ids))
    confirmations = [_acknowledgement_view(a, name) for a, name in acknowledgements[alert.id]]
    return AlertDetail(
        **view.model_dump(), url=policy.alert_url(alert.id), reports=reports, acknowledgements=confirmations,
        timeline=timeline.build(alert, reports, view.notified, view.escalations, confirmations, deliveries),
        deliveries=[_delivery_view(d) for d in deliveries],
    )


def _report_details(alert: Alert, rows: dict[str, AssessedReport]) -> list[ReportDetail]:
    """The alert's reports in the order they joined. One kept before reports were stored is shown from the alert
    itself when it is the report behind the current level; others from then are left out."""
    details = []
    for report_id in alert.report_ids:
        row = rows.get(report_id)
        if row is not None:
            details.append(_report_detail(row))
        elif report_id == alert.assessment.get("report_id"):
            details.append(_report_detail_from_alert(alert))
    return details


def _report_detail(row: AssessedReport) -> ReportDetail:
    details = row.details
    return ReportDetail(
        report_id=row.report_id, kind=ReportKind(row.kind), occurred_at=row.occurred_at,
        enterprise=EnterpriseView(name=row.enterprise_name, credit_code=row.credit_code, industry=row.industry),
        workers_involved=row.workers_involved, migrant_workers_involved=row.migrant_workers_involved,
        arrears=details.get("arrears"), dispute=details.get("dispute"), stability=details.get("stability"),
        collective_action=list(details.get("collective_action", [])), petition=details.get("petition", "none"),
        online_exposure=details.get("online_exposure"), extreme_threat=details.get("extreme_threat"),
        new_employment_form=details.get("new_employment_form"), summary=details.get("summary", ""),
        level=RiskLevel(row.level), score=row.score, assessed_at=row.assessed_at,
        reasons=[Reason.model_validate(reason) for reason in row.reasons],
    )


def _report_detail_from_alert(alert: Alert) -> ReportDetail:
    report = Report.model_validate(alert.report)
    assessment = AssessmentView.model_validate(alert.assessment)
    return ReportDetail(
        report_id=assessment.report_id, kind=report.kind, occurred_at=report.occurred_at,
        enterprise=EnterpriseView(name=report.enterprise.name, credit_code=report.enterprise.credit_code,
                                  industry=report.enterprise.industry),
        workers_involved=report.workers_involved, migrant_workers_involved=report.migrant_workers_involved,
        arrears=report.arrears.model_dump() if report.arrears else None,
        dispute=report.dispute.model_dump() if report.dispute else None,
        stability=report.stability.model_dump() if report.stability else None,
        collective_action=sorted(action.value for action in report.collective_action),
        petition=report.petition.value, online_exposure=report.online_exposure.value,
        extreme_threat=report.extreme_threat, new_employment_form=report.new_employment_form,
        summary=report.summary, level=assessment.level, score=assessment.score,
        assessed_at=datetime.fromisoformat(assessment.assessed_at), reasons=assessment.reasons,
    )


async def alert_views(session: AsyncSession, alerts: Sequence[Alert]) -> list[AlertView]:
    """The alerts as the API shows them, with who was notified (and whether each confirmed receipt) and the
    escalations: three queries for all of them."""
    views, _ = await _views(session, alerts)
    return views


async def _views(session: AsyncSession, alerts: Sequence[Alert]
                 ) -> tuple[list[AlertView], dict[str, list[tuple[Acknowledgement, str]]]]:
    """The views and, by alert id, the receipts with the bodies' names they were made from."""
    if not alerts:
        return [], {}
    ids = [alert.id for alert in alerts]
    notifications = await repository.notified_of(session, ids)
    escalations = await repository.escalations_of(session, ids)
    acknowledgements = await repository.acknowledgements_of(session, ids)
    views = [
        _alert_view(alert, notifications.get(alert.id, []), escalations.get(alert.id, []),
                    confirmed={a.body_id for a, _ in acknowledgements.get(alert.id, []) if a.level == alert.level})
        for alert in alerts
    ]
    return views, {alert.id: acknowledgements.get(alert.id, []) for alert in alerts}


def _acknowledgement_view(acknowledgement: Acknowledgement, body_name: str) -> AcknowledgementView:
    return AcknowledgementView(
        body_id=acknowledgement.body_id, body_name=body_name, person=acknowledgement.person,
        note=acknowledgement.note, level=RiskLevel(acknowledgement.level),
        via="link" if acknowledgement.via == "link" else "api", at=acknowledgement.at,
    )


def _alert_view(alert: Alert, notified: Sequence[tuple[Notification, str]], escalations: Sequence[Escalation], *,
                confirmed: set[str]) -> AlertView:
    return AlertView(
        alert_id=alert.id, credit_code=alert.credit_code, kind=ReportKind(alert.kind), level=RiskLevel(alert.level),
        state=AlertState(alert.state), report_ids=list(alert.report_ids), enterprise_name=alert.enterprise_name,
        region_code=alert.region_code, score=alert.score,
        reasons=AssessmentView.model_validate(alert.assessment).reasons,
        opened_at=alert.opened_at, updated_at=alert.updated_at,
        **_deadline_fields(alert),
        acknowledged_at=alert.acknowledged_at, resolved_at=alert.resolved_at, outcome=alert.outcome, note=alert.note,
        notified=[NotifiedView(body_id=n.body_id, body_name=name, at=n.at, reason=n.reason,
                               acknowledged=n.body_id in confirmed) for n, name in notified],
        escalations=[EscalationView(body_id=e.body_id, from_level=e.from_level, to_level=e.to_level, at=e.at)
                     for e in escalations],
        owner=owner_view(alert), visits=visit_views(alert),
    )


def _deadline_fields(alert: Alert) -> dict[str, Any]:
    """While open: the deadline in working time (not the scaled timer), the rule that set it and its words."""
    if alert.state != AlertState.open.value:
        return {"ack_deadline": None, "ack_deadline_rule": None, "ack_deadline_rule_text": None}
    return {"ack_deadline": alert.ack_deadline_working or alert.ack_deadline,
            "ack_deadline_rule": alert.ack_deadline_rule, "ack_deadline_rule_text": _rule_text(alert.ack_deadline_rule)}


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


# --- inbox lists and export ----------------------------------------------------------------------------------------

CHANGES_OVERLAP = timedelta(seconds=60)
"""How far before the answer `server_time` lies. `updated_at` is stamped when a change is made and becomes visible
when its transaction commits (a Kafka batch, a worker tick): a poll from `server_time` sees again what changed in the
last minute (the page replaces alerts by id) rather than missing a change committed a little after it was stamped."""

MAX_CURSOR_LENGTH = 200
EXPORT_MAX_ROWS = 50_000
EXPORT_CHUNK = 1_000
BAD_CURSOR = "游标无效,请从第一页重新开始 / Invalid cursor: start again from the first page"
NOT_YOUR_REGION = "该地区不在本机构辖区内 / The region is outside the body's area"


def encode_cursor(key: repository.AlertKey) -> str:
    raw = json.dumps([key.level_order, key.opened_at.isoformat(), key.alert_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> repository.AlertKey:
    """The list position a cursor names; ValueError (a 422 for the route) when it is not one of ours."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise ValueError(BAD_CURSOR)
    try:
        level_order, opened_at, alert_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        key = repository.AlertKey(level_order=int(level_order), opened_at=datetime.fromisoformat(opened_at),
                                  alert_id=str(alert_id))
    except (ValueError, TypeError, binascii.Error) as error:
        raise ValueError(BAD_CURSOR) from error
    if key.opened_at.tzinfo is None:
        raise ValueError(BAD_CURSOR)
    return key


def _alert_key(alert: Alert) -> repository.AlertKey:
    return repository.AlertKey(level_order=alert.level_order, opened_at=alert.opened_at, alert_id=alert.id)


def alert_query(caller: Caller, filters: AlertFilters) -> repository.AlertQuery:
    """The repository's query for these filters as `caller` may see them (a body: the alerts it was notified of)."""
    q = (filters.q or "").strip()
    return repository.AlertQuery(
        visible_to=caller.body_id, level=filters.level.value if filters.level else None,
        kind=filters.kind.value if filters.kind else None, state=filters.state.value if filters.state else None,
        region_prefix=regions.prefix_of(filters.region_code) if filters.region_code else None,
        q=q or None, since=filters.since, until=filters.until, changed_since=filters.changed_since,
        has_owner=filters.has_owner,
    )


async def list_alerts(session: AsyncSession, caller: Caller, filters: AlertFilters, *, limit: int,
                      cursor: str | None, now: datetime | None = None) -> AlertPage:
    """A page of alerts, most severe first, then oldest first, after `cursor` (keyset): a body sees those it was
    notified of, admin all. Three queries whatever the page size (the page, its notifications, its escalations)."""
    server_time = (now or utcnow()) - CHANGES_OVERLAP
    after = decode_cursor(cursor) if cursor else None
    alerts = await repository.alerts_page(session, alert_query(caller, filters), after=after, limit=limit + 1)
    items = await alert_views(session, alerts[:limit])
    next_cursor = encode_cursor(_alert_key(alerts[limit - 1])) if len(alerts) > limit else None
    return AlertPage(items=items, next_cursor=next_cursor, server_time=server_time)


EXPORT_COLUMNS = (
    "预警编号", "企业名称", "统一社会信用代码", "行业", "类别", "级别", "状态", "地区", "地区代码", "评分", "报告数",
    "开启时间(北京时间)", "确认时限(北京时间)", "确认时间(北京时间)", "办结时间(北京时间)", "结果",
)
EXPORT_TIME_ZONE = ZoneInfo("Asia/Shanghai")


def _local(moment: datetime | None) -> str:
    return moment.astimezone(EXPORT_TIME_ZONE).strftime("%Y-%m-%d %H:%M:%S") if moment else ""


def _cell(value: str) -> str:
    """A text cell Excel will not run as a formula (a name starting with =, +, - or @)."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def export_row(alert: Alert) -> list[str]:
    industry = INDUSTRIES.get(alert.industry or "")
    return [
        alert.id, _cell(alert.enterprise_name), alert.credit_code, industry.both if industry else "",
        label("kind", alert.kind).both, label("level", alert.level).both, label("state", alert.state).both,
        regions.label(alert.region_code, with_city=True), alert.region_code, str(alert.score),
        str(len(alert.report_ids)), _local(alert.opened_at),
        _local(alert.ack_deadline if alert.state == AlertState.open.value else None),
        _local(alert.acknowledged_at), _local(alert.resolved_at),
        label("outcome", alert.outcome).both if alert.outcome else "",
    ]


def _csv_lines(rows: Iterable[Sequence[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


async def export_csv(sessions: SessionFactory, caller: Caller, filters: AlertFilters, *,
                     max_rows: int = EXPORT_MAX_ROWS, chunk: int = EXPORT_CHUNK) -> AsyncIterator[bytes]:
    """The alerts of the list with these filters, in its order, as CSV (UTF-8 with a BOM so that Excel reads it,
    Chinese headers), at most `max_rows` of them; read in chunks of `chunk` by keyset, each chunk in a session of
    its own (the export streams after the request's session has ended). When there were more, a last line says so.
    """
    query = alert_query(caller, filters)
    yield "\ufeff".encode() + _csv_lines([EXPORT_COLUMNS])
    after: repository.AlertKey | None = None
    written = 0
    while written < max_rows:
        size = min(chunk, max_rows - written)
        async with sessions() as session:
            alerts = await repository.alerts_page(session, query, after=after, limit=size + 1,
                                                  without_documents=True)
        page = alerts[:size]
        if page:
            yield _csv_lines(export_row(alert) for alert in page)
            written += len(page)
            after = _alert_key(page[-1])
        if len(alerts) <= size:
            return
    yield _csv_lines([[f"仅导出前 {max_rows} 条,请缩小筛选范围 / Only the first {max_rows} alerts were exported: "
                       "narrow the filters"]])


# --- situation -----------------------------------------------------------------------------------------------------

SITUATION_WEEKS = 12
SITUATION_TIME_ZONE = ZoneInfo(repository.SITUATION_TIME_ZONE)
BAD_PERIOD = "起始时间须早于截止时间 / since must be before until"


class InvalidPeriod(ApiError):
    """422 in the validation shape: the period is empty or reversed."""

    status_code, code, message = 422, "validation_error", "请求内容有误 / The request is invalid"

    def __init__(self) -> None:
        super().__init__(details=[{"field": "since", "location": "query", "type": "value_error",
                                   "reason": BAD_PERIOD}])


async def _caller_region(session: AsyncSession, caller: Caller) -> str | None:
    """The region a body sees (its own region code; None for the admin: everything)."""
    if caller.body_id is None:
        return None
    body = await repository.get_body(session, caller.body_id)
    if body is None:
        raise NotFound(NO_SUCH_BODY)
    return body.region_code


def _scope(own: str | None, requested: str | None, default: str | None) -> str | None:
    """The region to answer for: the one asked if the caller's region covers it, else 403."""
    if requested is None:
        return own if own is not None else default
    if own is not None and not regions.covers(own, requested):
        raise Forbidden(NOT_YOUR_REGION)
    return requested


def default_period(now: datetime) -> tuple[datetime, datetime]:
    """The last `SITUATION_WEEKS` whole weeks up to today (Asia/Shanghai), today included: from a Monday to the start
    of tomorrow."""
    today = now.astimezone(SITUATION_TIME_ZONE).date()
    monday = today - timedelta(days=today.weekday() + 7 * (SITUATION_WEEKS - 1))
    return (datetime.combine(monday, time(), SITUATION_TIME_ZONE),
            datetime.combine(today + timedelta(days=1), time(), SITUATION_TIME_ZONE))


def _weeks(since: datetime, until: datetime) -> list[date]:
    first = since.astimezone(SITUATION_TIME_ZONE).date()
    last = (until - timedelta(microseconds=1)).astimezone(SITUATION_TIME_ZONE).date()
    week = first - timedelta(days=first.weekday())
    weeks = []
    while week <= last:
        weeks.append(week)
        week += timedelta(days=7)
    return weeks


async def situation(session: AsyncSession, caller: Caller, *, since: datetime | None, until: datetime | None,
                    region_code: str | None, now: datetime) -> Situation:
    """Reports by level (that occurred in the period) and alerts open now by level, per city and county of the
    region, per week and per industry. A body sees its own region (403 outside it), the admin all (Jiangsu by
    default). The body, the report counts from the rollups (up to four queries), the open alerts."""
    default_since, default_until = default_period(now)
    since, until = since or default_since, until or default_until
    if since >= until:
        raise InvalidPeriod()
    scope = _scope(await _caller_region(session, caller), region_code, regions.JIANGSU)
    assert scope is not None
    prefix = regions.prefix_of(scope)
    cities = [city for city in regions.cities(regions.province_of(scope) or regions.JIANGSU)
              if regions.covers(scope, city.code) or regions.covers(city.code, scope)]
    counties = [county for city in cities for county in regions.counties_of(city.code)
                if regions.covers(scope, county.code)]
    # A city's reports within the scope: the city's own counts, or the scope's when the scope is inside the city.
    city_area = {city.code: city.code if regions.covers(scope, city.code) else scope for city in cities}
    counts = await repository.situation_report_counts(
        session, scope=scope, areas=sorted({scope, *city_area.values(), *(county.code for county in counties)}),
        since=since, until=until)
    open_counts = await repository.unresolved_alert_counts(session, region_prefix=prefix)

    county_open = {code: _open_counts(tally) for code, tally in open_counts.by_county.items()
                   if tally.keys() & OpenAlertCounts.model_fields.keys()}
    industry_open = {code: _open_counts(tally) for code, tally in open_counts.by_industry.items()
                     if tally.keys() & OpenAlertCounts.model_fields.keys()}

    return Situation(
        since=since, until=until, region_code=scope,
        cities=[SituationRegion(
            region_code=city.code, name_zh=city.name_zh, name_en=city.name_en,
            reports=_level_counts(counts.by_area.get(city_area[city.code])),
            open_alerts=_sum_levels(OpenAlertCounts,
                                    (c for code, c in county_open.items() if _in_city(code, city.code))),
        ) for city in cities],
        counties=[SituationCounty(
            region_code=county.code, city_code=county.parent or county.code[:4] + "00", name_zh=county.name_zh,
            name_en=county.name_en, reports=_level_counts(counts.by_area.get(county.code)),
            open_alerts=county_open.get(county.code, OpenAlertCounts()),
        ) for county in counties],
        weekly=[SituationWeek(week_start=week, reports=_level_counts(counts.by_week.get(week)))
                for week in _weeks(since, until)],
        industries=[SituationIndustry(
            industry=code, name_zh=name.zh, name_en=name.en,
            reports=_level_counts(counts.by_industry.get(code)), open_alerts=industry_open.get(code, OpenAlertCounts()),
        ) for code, name in INDUSTRIES.items() if code in counts.by_industry or code in industry_open],
    )


def _open_counts(tally: repository.LevelTally) -> OpenAlertCounts:
    return OpenAlertCounts(**{level: count for level, count in tally.items() if level in OpenAlertCounts.model_fields})


def _level_counts(tally: repository.LevelTally | None) -> LevelCounts:
    """The counts of the levels the response shows (any other level stored is left out, as before)."""
    return LevelCounts(**{level: count for level, count in (tally or {}).items() if level in LevelCounts.model_fields})


def _in_city(county_code: str, city_code: str) -> bool:
    return county_code[:4] == city_code[:4]


Counts = TypeVar("Counts", LevelCounts, OpenAlertCounts)


def _sum_levels(kind: type[Counts], parts: Iterable[Counts]) -> Counts:
    total = kind()
    for part in parts:
        for level in kind.model_fields:
            setattr(total, level, getattr(total, level) + getattr(part, level))
    return total


# --- watch list ----------------------------------------------------------------------------------------------------

WATCHLIST_MAX_DAYS = 366


def _encode_watch_cursor(item: repository.WatchedEnterprise) -> str:
    raw = json.dumps([item.latest_occurred_at.isoformat(), item.credit_code], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_watch_cursor(cursor: str) -> tuple[datetime, str]:
    """The watch-list position a cursor names; ValueError (a 422 for the route) when it is not one of ours."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise ValueError(BAD_CURSOR)
    try:
        latest, credit_code = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        position = (datetime.fromisoformat(latest), str(credit_code))
    except (ValueError, TypeError, binascii.Error) as error:
        raise ValueError(BAD_CURSOR) from error
    if position[0].tzinfo is None:
        raise ValueError(BAD_CURSOR)
    return position


async def watchlist(session: AsyncSession, caller: Caller, *, region_code: str | None, days: int, limit: int,
                    cursor: str | None, now: datetime) -> WatchlistPage:
    """Enterprises with blue reports in the last `days` days, the most recent first: a body sees its own region
    (a county federation its county), the admin all or the region asked."""
    scope = _scope(await _caller_region(session, caller), region_code, None)
    since = now - timedelta(days=days)
    after = decode_watch_cursor(cursor) if cursor else None
    rows = await repository.watchlist_page(session, region_prefix=regions.prefix_of(scope) if scope else None,
                                           since=since, after=after, limit=limit + 1)
    items = [WatchedEnterpriseView(
        credit_code=row.credit_code, enterprise_name=row.enterprise_name, region_code=row.region_code,
        region_label=regions.label(row.region_code, with_city=True), reports=row.count,
        latest_occurred_at=row.latest_occurred_at, latest_score=row.latest_score,
        kinds=[ReportKind(kind) for kind in row.kinds],
    ) for row in rows[:limit]]
    return WatchlistPage(region_code=scope, since=since, items=items,
                         next_cursor=_encode_watch_cursor(rows[limit - 1]) if len(rows) > limit else None)
# --- case ownership (包案) -------------------------------------------------------------------------------------------
# The current owner and the case log live on the alert row (`Alert.owner`, `Alert.casework`): reading them costs no
# query. Each change is published on alerts.v1 (`alert.owner_named`, `alert.visit_recorded`) with the alert's state
# as it is; the person's name and the note stay out of the event.


class InvalidVisit(ApiError):
    """A 422 about one field of the visit, in the same shape as the request-validation errors."""

    status_code, code, message = 422, "validation_error", "请求内容有误 / The request is invalid"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(details=[{"field": field, "location": "body", "type": "value_error", "reason": reason}])


class VisitLogFull(Conflict):
    code = "visit_log_full"
    message = (f"每条预警最多记录 {lifecycle.MAX_VISITS} 次走访 / At most {lifecycle.MAX_VISITS} visits are "
               "recorded per alert")


async def name_owner(session: AsyncSession, alert_id: str, caller: Caller, payload: OwnerAssign, policy: Policy,
                     now: datetime) -> AlertDetail:
    """A notified body names the alert's responsible leader; a later naming replaces the owner, and both stay in
    the case log."""
    alert, notified = await _alert_for_action(session, alert_id, caller)
    decision = lifecycle.on_name_owner(snapshot(alert), caller.body_id, notified=notified)
    if not isinstance(decision, lifecycle.NameOwner):
        _refuse(decision)
        raise AssertionError(f"unhandled decision {decision!r}")
    body_name = await _body_name(session, decision.body_id)
    previous = owner_view(alert)
    owner = OwnerView(person=payload.person, title=payload.title, body_id=decision.body_id, body_name=body_name,
                      at=now)
    entry = OwnerNamedEntry(at=now, person=payload.person, title=payload.title, body_id=decision.body_id,
                            body_name=body_name, replaces=previous)
    alert.owner = owner.model_dump(mode="json")
    alert.casework = [*alert.casework, entry.model_dump(mode="json")]  # a new list: the JSONB column is rewritten
    alert.updated_at = now
    _publish(session, alert, "alert.owner_named", now, trace_id=alert.trace_id, body_ids=[decision.body_id])
    await repository.flush(session)
    return await _detail(session, alert, policy)


async def record_visit(session: AsyncSession, alert_id: str, caller: Caller, payload: VisitRecord,
                       policy: Policy, now: datetime) -> AlertDetail:
    """A notified body records a visit made on the case (not in the future; after resolution only one that took
    place before it)."""
    alert, notified = await _alert_for_action(session, alert_id, caller)
    decision = lifecycle.on_record_visit(
        snapshot(alert), caller.body_id, notified=notified, at=payload.at, now=now, resolved_at=alert.resolved_at,
        visits=sum(1 for entry in alert.casework if entry.get("type") == "visit"),
    )
    match decision:
        case lifecycle.VisitRefused():
            raise InvalidVisit(decision.field, decision.reason)
        case lifecycle.VisitLogFull():
            raise VisitLogFull()
        case lifecycle.RecordVisit():
            pass
        case _:
            _refuse(decision)
            raise AssertionError(f"unhandled decision {decision!r}")
    entry = VisitEntry(at=payload.at.astimezone(UTC), person=payload.person, note=payload.note,
                       body_id=decision.body_id, body_name=await _body_name(session, decision.body_id),
                       recorded_at=now)
    alert.casework = [*alert.casework, entry.model_dump(mode="json")]
    alert.updated_at = now
    _publish(session, alert, "alert.visit_recorded", now, trace_id=alert.trace_id, body_ids=[decision.body_id])
    await repository.flush(session)
    return await _detail(session, alert, policy)


async def _body_name(session: AsyncSession, body_id: str) -> str:
    body = await repository.get_body(session, body_id)
    return body.name if body is not None else body_id


def owner_view(alert: Alert) -> OwnerView | None:
    """The alert's responsible leader, or None."""
    return OwnerView.model_validate(alert.owner) if alert.owner else None


def visit_views(alert: Alert) -> list[VisitView]:
    """The visits recorded on the alert, by the time they took place (then as recorded)."""
    visits = [VisitEntry.model_validate(entry) for entry in alert.casework or () if entry.get("type") == "visit"]
    return [VisitView(at=v.at, person=v.person, note=v.note, body_id=v.body_id, body_name=v.body_name,
                      recorded_at=v.recorded_at)
            for v in sorted(visits, key=lambda v: (v.at, v.recorded_at))]


def casework_timeline(alert: Alert) -> list[OwnerNamedEntry | VisitEntry]:
    """The alert's timeline entries from its case log: each naming of a responsible leader (`owner_named`, at the
    time it was made, with the owner it replaced) and each visit (`visit`, at the time it took place), by `at`.
    No query: the case log is on the row."""
    entries: list[OwnerNamedEntry | VisitEntry] = []
    for raw in alert.casework or ():
        if raw.get("type") == "owner_named":
            entries.append(OwnerNamedEntry.model_validate(raw))
        elif raw.get("type") == "visit":
            entries.append(VisitEntry.model_validate(raw))
    return sorted(entries, key=lambda entry: entry.at)


async def casework_gauges(session: AsyncSession, now: datetime) -> tuple[dict[str, int], dict[str, tuple[int, int]]]:
    """Open or acknowledged alerts without a responsible leader by level, and (expected, answered) per city over
    the screening rounds open now."""
    cities: dict[str, tuple[int, int]] = {}
    for county, expected, answered in await repository.open_round_coverage(session, now):
        city = city_code(county)
        before = cities.get(city, (0, 0))
        cities[city] = (before[0] + expected, before[1] + answered)
    return await repository.unowned_alerts_by_level(session), cities


# --- screening rounds (常态化排查): coverage and the due notice ----------------------------------------------------

ONLY_UNIONS = "仅工会可查看排查覆盖情况 / Only union federations see screening coverage"
NOTICE_EVENT = "screening.round_due"
# Hong Kong, Macao and Taiwan have no city level: their counties count under the province.
_NO_CITY_LEVEL = frozenset({"71", "81", "82"})


def city_code(county: str) -> str:
    """The city of a county code (a bounded metrics label)."""
    return f"{county[:2]}0000" if county[:2] in _NO_CITY_LEVEL else f"{county[:4]}00"


async def handle_screening(session: AsyncSession, event: ScreeningEvent, policy: Policy, now: datetime) -> bool:
    """Apply one `screening.v1` event to the coverage of its (round, county); True when it queued the due notice.
    A redelivered event (same event id) changes nothing."""
    if not await repository.mark_processed(session, str(event.event_id), now):
        return False
    await repository.ensure_coverage(
        session, round_id=event.round_id, county=event.county, round_name=event.round_name,
        round_region_code=event.round_region_code, opens_at=event.opens_at, due_at=event.due_at, now=now,
    )
    match event:
        case ScreeningRoundOpened():
            row = await _coverage(session, event.round_id, event.county)
            row.expected = event.expected
            row.units = [unit.model_dump(mode="json") for unit in event.units]
            row.updated_at = now
            return False
        case ScreeningReturnSubmitted():
            # The highest revision of a unit's answer is in force, whatever order the copies arrive in.
            await repository.upsert_answer(
                session, round_id=event.round_id, unit_id=event.unit_id, county=event.county,
                unit_name=event.unit_name, status=event.status.value, report_count=event.report_count,
                revision=event.revision, submitted_at=event.submitted_at,
            )
            return False
        case ScreeningRoundDue():
            return await notify_round_due(session, event, policy, now)
    raise AssertionError(f"unhandled screening event {event!r}")


async def _coverage(session: AsyncSession, round_id: str, county: str) -> ScreeningCoverage:
    row = await repository.coverage_for_update(session, round_id, county)
    assert row is not None, "ensure_coverage created it"
    return row


async def notify_round_due(session: AsyncSession, event: ScreeningRoundDue, policy: Policy, now: datetime) -> bool:
    """The round came due in this county: keep its final figures and send the county federation (the union body
    of the county; else the one above, as routing falls back) ONE notice listing the units that did not answer —
    no escalation, no deadline. The coverage row is locked and marked in the transaction that queues the notice's
    deliveries, so a second copy of the event (even under another event id) sends nothing. True when queued."""
    row = await _coverage(session, event.round_id, event.county)
    if row.final is None:
        row.final = {"expected": event.expected, "answered": event.answered, "no_risk": event.no_risk,
                     "risks_reported": event.risks_reported,
                     "missing": [unit.model_dump(mode="json") for unit in event.missing]}
        row.due_received_at = now
        row.expected = row.expected or event.expected
        row.updated_at = now
    if row.notice_at is not None:
        return False
    bodies = await repository.active_bodies_in_province(session, event.county)
    target = resolve_pair([body_ref(body) for body in bodies.values()], BodyKind.union, BodyLevel.county,
                          event.county)
    row.notice_at = now
    row.notice_body_id = target.body_id if target is not None else None
    if target is None:
        SCREENING_NOTICES.labels(outcome="no_body").inc()
        log.warning("no union body covers county %s: the due notice of round %s goes nowhere", event.county,
                    event.round_id)
        return False
    body = bodies[target.body_id]
    notice_id = f"{event.round_id}/{event.county}"
    payload = screening_notice_payload(event, policy).model_dump_json()
    repository.add(session, *(
        Delivery(id=str(uuid.uuid4()), alert_id=None, kind=DeliveryKind.screening_notice.value, subject=notice_id,
                 body_id=body.id, event_type=NOTICE_EVENT, channel_type=channel["type"],
                 channel=channel_record(channel), channel_index=index,
                 payload=payload, state=DeliveryState.pending.value, attempts=0, created_at=now, next_attempt_at=now)
        for index, channel in enumerate(body.channels)
    ))
    SCREENING_NOTICES.labels(outcome="queued").inc()
    return True


def screening_notice_payload(event: ScreeningRoundDue, policy: Policy) -> ScreeningNoticePayload:
    """What every delivery of the due notice carries (webhook body; the e-mail and robot texts are made of it)."""
    listed = regions.region(event.county)
    return ScreeningNoticePayload(
        notice_id=f"{event.round_id}/{event.county}",
        round=NoticeRound(round_id=event.round_id, name=event.round_name, region_code=event.round_region_code,
                          opens_at=event.opens_at, due_at=event.due_at),
        county=NoticeCounty(code=event.county, name_zh=listed.name_zh if listed else event.county,
                            name_en=listed.name_en if listed else event.county),
        expected=event.expected, answered=event.answered, no_risk=event.no_risk,
        risks_reported=event.risks_reported,
        missing=[ScreeningUnitView(unit_id=unit.unit_id, name=unit.name) for unit in event.missing],
        inbox_url=f"{policy.inbox_url}#/coverage",  # the inbox opens on its screening coverage tab
    )


async def screening_coverage(session: AsyncSession, caller: Caller, *, region_code: str | None,
                             round_id: str | None, limit: int, now: datetime) -> CoveragePage:
    """Coverage per round and county: the admin sees every county, a union federation the counties of its region
    (a county federation its county, a city federation its counties); other bodies are refused. `region_code`
    narrows it further. Four queries."""
    prefix = await _coverage_scope(session, caller, region_code)
    if prefix is None:
        return CoveragePage(rounds=[])
    round_ids = await repository.coverage_round_ids(session, county_prefix=prefix, round_id=round_id, limit=limit)
    rows = await repository.coverage_rows(session, round_ids, prefix)
    answers: dict[tuple[str, str], list[ScreeningAnswer]] = {}
    for answer in await repository.answers_of(session, [(row.round_id, row.county) for row in rows]):
        answers.setdefault((answer.round_id, answer.county), []).append(answer)
    names = await repository.body_names(session, [row.notice_body_id for row in rows if row.notice_body_id])
    by_round: dict[str, list[ScreeningCoverage]] = {}
    for row in rows:
        by_round.setdefault(row.round_id, []).append(row)
    return CoveragePage(rounds=[
        _round_coverage(by_round[rid], answers, names, now) for rid in round_ids if rid in by_round
    ])


async def _coverage_scope(session: AsyncSession, caller: Caller, region_code: str | None) -> str | None:
    """The county-code prefix the caller may see, narrowed by `region_code`; None when nothing is left."""
    wanted = regions.prefix_of(region_code) if region_code else ""
    if caller.is_admin:
        return wanted
    body = await repository.get_body(session, caller.body_id or "")
    if body is None or body.kind != BodyKind.union.value:
        raise Forbidden(ONLY_UNIONS)
    own = body.region_code[:BodyLevel(body.level).significant_digits]
    if wanted.startswith(own):
        return wanted
    return own if own.startswith(wanted) else None


def _round_coverage(rows: Sequence[ScreeningCoverage], answers: dict[tuple[str, str], list[ScreeningAnswer]],
                    names: dict[str, str], now: datetime) -> RoundCoverage:
    first = rows[0]
    counties = [_county_coverage(row, answers.get((row.round_id, row.county), []), names) for row in rows]
    state: RoundState = "upcoming" if now < first.opens_at else "open"
    if now >= first.due_at or all(county.closed for county in counties):
        state = "closed"
    return RoundCoverage(
        round_id=first.round_id, name=first.round_name, region_code=first.round_region_code,
        opens_at=first.opens_at, due_at=first.due_at, state=state,
        expected=sum(c.expected for c in counties), answered=sum(c.answered for c in counties),
        no_risk=sum(c.no_risk for c in counties), risks_reported=sum(c.risks_reported for c in counties),
        counties=counties,
    )


def _county_coverage(row: ScreeningCoverage, answers: Sequence[ScreeningAnswer],
                     names: dict[str, str]) -> CountyCoverage:
    """Once the round came due, the county's final figures (intake's); before, the answers heard so far."""
    notice = None if row.notice_at is None else ScreeningNoticeView(
        at=row.notice_at, body_id=row.notice_body_id,
        body_name=names.get(row.notice_body_id) if row.notice_body_id else None)
    common = {"county": row.county, "county_name": regions.label(row.county), "closed": row.final is not None,
              "notice": notice}
    if row.final is not None:
        final = row.final
        return CountyCoverage(
            **common, expected=final["expected"], answered=final["answered"], no_risk=final["no_risk"],
            risks_reported=final["risks_reported"],
            missing=[ScreeningUnitView.model_validate(unit) for unit in final["missing"]],
        )
    expected_ids = {unit["unit_id"] for unit in row.units}
    in_force = [a for a in answers if not expected_ids or a.unit_id in expected_ids]
    answered_ids = {a.unit_id for a in in_force}
    return CountyCoverage(
        **common, expected=row.expected, answered=len(in_force),
        no_risk=sum(1 for a in in_force if a.status == ScreeningStatus.no_risk.value),
        risks_reported=sum(1 for a in in_force if a.status == ScreeningStatus.risks_reported.value),
        missing=[ScreeningUnitView.model_validate(unit) for unit in row.units if unit["unit_id"] not in answered_ids],
    )
# --- delivering: the channel as it is at send time, many results per transaction -----------------------------------

BODY_INACTIVE = "机构已停用,推送取消 / The body was deactivated: delivery cancelled"
CHANNEL_GONE = "机构已删除该渠道,推送取消 / The body no longer has this channel: delivery cancelled"
SECRET_UNREADABLE = ("渠道密钥无法解密(ALERTS_SECRET_KEY 已更换?),推送取消 / The channel secret cannot be decrypted "
                     "(was ALERTS_SECRET_KEY replaced?): delivery cancelled")


def channel_record(channel: dict[str, Any]) -> dict[str, Any]:
    """What a delivery keeps of its channel, as a record only: everything but the secret (plain or sealed)."""
    return public_channel(channel)


async def cancel_deliveries_of_body(session: AsyncSession, body_id: str, now: datetime) -> int:
    """A deactivated body gets nothing more: its pending deliveries become `cancelled`."""
    return await repository.cancel_pending_deliveries_of_body(session, body_id, now, BODY_INACTIVE)


def channel_for(delivery: Delivery, body: Body | None, cipher: MultiFernet) -> ChannelConfig | str:
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
    try:
        # Stored channels carry their secret sealed (`channel_secrets`); the sender needs it in plain text.
        return channel_config_adapter.validate_python(unseal_channel(raw, cipher))
    except SecretUnreadable:
        return SECRET_UNREADABLE


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
    cipher = settings.channel_cipher()
    claimed: list[Claimed] = []
    cancelled: dict[str, list[Delivery]] = {}
    for delivery in deliveries:
        channel = channel_for(delivery, bodies.get(delivery.body_id), cipher)
        if isinstance(channel, str):
            cancelled.setdefault(channel, []).append(delivery)
        else:
            claimed.append(Claimed(delivery, channel))
    for reason, rows in cancelled.items():
        await repository.cancel_deliveries(session, [row.id for row in rows], now, reason)
    return claimed, [row for rows in cancelled.values() for row in rows]


@dataclass
class SendLease:
    """New deliveries this process sends itself, straight after the commit that creates them: they are stored
    leased until `until` (as a claim would lease them) and handed to the delivery worker in memory, which saves a
    claiming transaction and a wake-up on every alert's way out.

    Nothing changes for at-least-once: a process that dies before sending leaves them leased, the lease runs out
    and any replica's claim sends them (same delivery id). At most `room` are taken (what the worker has free); a
    delivery whose body has no channel to send to now is left to the claim, which cancels it with its reason."""

    room: int
    until: datetime
    cipher: MultiFernet
    claimed: list[Claimed] = field(default_factory=list)
    left: int = 0
    """New deliveries not taken: the claim loop must be woken for them."""

    def take(self, rows: Sequence[dict[str, Any]], bodies: dict[str, Body]) -> None:
        """Lease what fits of `rows` (delivery rows about to be inserted: the leased ones are changed in place)."""
        for row in rows:
            if len(self.claimed) >= self.room:
                self.left += 1
                continue
            delivery = Delivery(**row)
            channel = channel_for(delivery, bodies.get(delivery.body_id), self.cipher)
            if isinstance(channel, str):
                self.left += 1
                continue
            row["next_attempt_at"] = delivery.next_attempt_at = self.until
            self.claimed.append(Claimed(delivery, channel))


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
        session, [attempt.delivery.alert_id for attempt in attempts
                  if attempt.result.ok and attempt.delivery.alert_id is not None], now)  # a notice has no alert
    return [FirstDelivery(alert_id, accepted_at, opened_at) for alert_id, accepted_at, opened_at in firsts]


async def announce_work(session: AsyncSession) -> None:
    """Tell every replica, at commit, that deliveries or outbox rows were queued (PostgreSQL NOTIFY)."""
    await repository.notify_work(session)


# --- channel secrets (key rotation) ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResealCounts:
    """What `reseal_channel_secrets` did: channels re-encrypted under the first key, already under it, unreadable
    with every configured key (left as they were), and channels without a secret."""

    resealed: int = 0
    current: int = 0
    unreadable: int = 0
    without_secret: int = 0


async def reseal_channel_secrets(session: AsyncSession, keys: str) -> ResealCounts:
    """Re-encrypt every stored channel secret under the first of `keys` (comma-separated Fernet keys, the new one
    first): the step between putting a new key in front of `ALERTS_SECRET_KEY` and removing the old one. A secret
    already under the first key is left untouched; one that no key opens is counted and left as it was."""
    cipher = cipher_for(keys)
    first = cipher_for(keys.split(",")[0])
    counts: dict[str, int] = defaultdict(int)
    for body in await repository.bodies_for_update(session):
        channels = []
        for channel in body.channels:
            stored = channel
            if channel.get(ENCRYPTED_FIELD) is None and channel.get(SECRET_FIELD) is None:
                counts["without_secret"] += 1
            elif channel.get(ENCRYPTED_FIELD) is not None and _opens(channel, first):
                counts["current"] += 1
            else:
                try:
                    stored = reseal_channel(channel, cipher)
                    counts["resealed"] += 1
                except SecretUnreadable:
                    counts["unreadable"] += 1
            channels.append(stored)
        if channels != body.channels:
            body.channels = channels
            body.updated_at = utcnow()
    await session.flush()
    return ResealCounts(**counts)


def _opens(channel: dict[str, Any], cipher: MultiFernet) -> bool:
    try:
        channel_secret(channel, cipher)
    except SecretUnreadable:
        return False
    return True
