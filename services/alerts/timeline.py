"""The alert's timeline, oldest first: built from what the detail loads anyway (the alert row — with its case log of
owner namings and visits —, its reports, who was notified, the deliveries, escalations and receipts), so it costs
no query of its own.

Pure: no database, no clock. A delivery shows its channel, its result and how many attempts it took — never the
target address or a secret. Entries at the same moment keep the order in which they happen (an escalation
before the notification it makes, a report joining before the level it raises).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from services.alerts.lifecycle import EXPIRED_OUTCOME
from services.alerts.models import Alert, Delivery, DeliveryState
from services.alerts.schemas import (
    AcknowledgementView,
    DeliveryResult,
    EscalationView,
    NotifiedView,
    OwnerNamedEntry,
    ReportDetail,
    TimelineEntry,
    TimelineType,
    VisitEntry,
)
from shared.events import RiskLevel

_SEQUENCE: tuple[TimelineType, ...] = (
    "opened", "joined", "level_raised", "escalated", "notified", "delivery", "acknowledged", "owner_named", "visit",
    "resolved", "expired",
)
_ORDER: dict[TimelineType, int] = {kind: rank for rank, kind in enumerate(_SEQUENCE)}


def build(alert: Alert, reports: Sequence[ReportDetail], notified: Sequence[NotifiedView],
          escalations: Sequence[EscalationView], acknowledgements: Sequence[AcknowledgementView],
          deliveries: Sequence[Delivery]) -> list[TimelineEntry]:
    """Every entry of the alert's timeline, oldest first."""
    names = {n.body_id: n.body_name for n in notified}
    entries = [
        *_reports(alert, reports),
        *(TimelineEntry(at=n.at, type="notified", body_id=n.body_id, body_name=n.body_name, reason=n.reason)
          for n in notified),
        *(_delivery(d, names) for d in deliveries),
        *(TimelineEntry(at=e.at, type="escalated", body_id=e.body_id, body_name=names.get(e.body_id),
                        from_level=e.from_level, to_level=e.to_level) for e in escalations),
        *(TimelineEntry(at=a.at, type="acknowledged", body_id=a.body_id, body_name=a.body_name, person=a.person,
                        note=a.note, level=a.level) for a in acknowledgements),
        *casework(alert),
        *_closing(alert, names),
    ]
    return sorted(entries, key=lambda entry: (entry.at, _ORDER[entry.type]))


def _reports(alert: Alert, reports: Sequence[ReportDetail]) -> list[TimelineEntry]:
    """Opened with the first report; each later report joined, raising the level when it was higher."""
    if not reports:
        return [TimelineEntry(at=alert.opened_at, type="opened", level=RiskLevel(alert.level))]
    first, *later = reports
    entries = [TimelineEntry(at=alert.opened_at, type="opened", report_id=first.report_id, level=first.level)]
    highest = first.level
    for report in later:
        # The alert takes a report in when risk has assessed it; never shown before the alert opened.
        at = max(report.assessed_at, alert.opened_at)
        entries.append(TimelineEntry(at=at, type="joined", report_id=report.report_id, level=report.level))
        if report.level.rank > highest.rank:
            entries.append(TimelineEntry(at=at, type="level_raised", report_id=report.report_id,
                                         from_level=highest.value, to_level=report.level.value))
            highest = report.level
    return entries


def _delivery(delivery: Delivery, names: dict[str, str]) -> TimelineEntry:
    state = DeliveryState(delivery.state)
    result: DeliveryResult
    if state == DeliveryState.delivered:
        result = "delivered"
    elif state == DeliveryState.failed:
        result = "failed"
    else:
        result = "retrying" if delivery.attempts else "pending"
    at: datetime = delivery.delivered_at or delivery.last_attempt_at or delivery.created_at
    return TimelineEntry(at=at, type="delivery", body_id=delivery.body_id, body_name=names.get(delivery.body_id),
                         channel=delivery.channel_type, result=result, attempts=delivery.attempts)


def _closing(alert: Alert, names: dict[str, str]) -> list[TimelineEntry]:
    if alert.resolved_at is None:
        return []
    if alert.outcome == EXPIRED_OUTCOME:
        return [TimelineEntry(at=alert.resolved_at, type="expired", outcome=alert.outcome, note=alert.note)]
    return [TimelineEntry(at=alert.resolved_at, type="resolved", body_id=alert.resolved_by,
                          body_name=names.get(alert.resolved_by or ""), outcome=alert.outcome, note=alert.note)]


def casework(alert: Alert) -> list[TimelineEntry]:
    """The case log's entries (包案): each naming of a responsible leader, at the time it was made, and each visit,
    at the time it took place (read from the alert row: no query)."""
    entries: list[TimelineEntry] = []
    for raw in alert.casework or ():
        if raw.get("type") == "owner_named":
            owner = OwnerNamedEntry.model_validate(raw)
            entries.append(TimelineEntry(at=owner.at, type="owner_named", body_id=owner.body_id,
                                         body_name=owner.body_name, person=owner.person, title=owner.title))
        elif raw.get("type") == "visit":
            visit = VisitEntry.model_validate(raw)
            entries.append(TimelineEntry(at=visit.at, type="visit", body_id=visit.body_id, body_name=visit.body_name,
                                         person=visit.person, note=visit.note, recorded_at=visit.recorded_at))
    return entries
