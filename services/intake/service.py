"""Business rules of intake: units and their keys, accepting reports durably, who may read what, and the
status a report reaches as the risk and alerts services report back on Kafka. Flush only: the caller (route,
consumer) owns the transaction."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake import repository
from services.intake.models import IdempotencyKey, OutboxMessage, Report, Unit
from services.intake.schemas import ReportPage, ReportSummary, ReportView, UnitKey
from services.intake.validation import ReportSubmission
from shared.auth import Caller, hash_token, new_token
from shared.events import AlertChanged, ReportAccepted, ReportAssessed, Topic
from shared.http import ApiError, Conflict, NotFound
from shared.outbox import outbox_row

STATUS_RANK = {"accepted": 0, "assessed": 1, "alerted": 2}
NO_SUCH_UNIT = "没有该上报单位 / No such reporting unit"


@dataclass(frozen=True)
class Accepted:
    report_id: str
    replayed: bool


async def create_unit(session: AsyncSession, *, name: str, region_code: str, now: datetime) -> tuple[Unit, str]:
    """A new reporting unit and its API key; the key is returned once and stored only as a hash."""
    api_key = new_token("unit")
    unit = Unit(name=name, region_code=region_code, key_hash=hash_token(api_key), active=True, created_at=now)
    await repository.add_unit(session, unit)
    return unit, api_key


async def rotate_key(session: AsyncSession, unit_id: str) -> UnitKey:
    """A new API key for the unit, returned once; the old one is refused from this transaction's commit on.
    Issuing a key also reactivates a unit whose key was revoked (the admin's way back)."""
    unit = await repository.unit_by_id(session, unit_id, for_update=True)
    if unit is None:
        raise NotFound(NO_SUCH_UNIT)
    api_key = new_token("unit")
    unit.key_hash = hash_token(api_key)
    unit.active = True
    await repository.flush(session)
    return UnitKey(unit_id=unit.id, api_key=api_key)


async def revoke_key(session: AsyncSession, unit_id: str) -> None:
    """Revoke the unit's key: the unit is deactivated (refused like an unknown key) and its key replaced by one
    nobody knows, so that reactivating it later does not bring the old key back."""
    unit = await repository.unit_by_id(session, unit_id, for_update=True)
    if unit is None:
        raise NotFound(NO_SUCH_UNIT)
    unit.key_hash = hash_token(new_token("revoked"))
    unit.active = False
    await repository.flush(session)


async def active_unit_id(session: AsyncSession, key_hash: str) -> str | None:
    """Who holds the API key with this hash: an active unit's id, or None (the caller lookup of `api`)."""
    return await repository.active_unit_id_by_key_hash(session, key_hash)


def request_fingerprint(raw_body: bytes) -> str:
    """Hash of the body's JSON content (key order and spacing do not matter)."""
    try:
        canonical = json.dumps(json.loads(raw_body), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    except ValueError:
        canonical = raw_body.decode(errors="replace")
    return hashlib.sha256(canonical.encode()).hexdigest()


async def accept_report(
    session: AsyncSession, *, unit: Caller, submission: ReportSubmission, fingerprint: str,
    idempotency_key: str | None, cipher: Fernet, now: datetime,
) -> Accepted:
    """Store the report and its `report.accepted` event in one transaction (the outbox).

    With an `Idempotency-Key`, the same key and body give the first answer again; another body is a conflict.
    """
    assert unit.unit_id is not None
    report_id = str(uuid.uuid4())
    if idempotency_key is not None:
        claimed = await repository.claim_idempotency_key(
            session,
            IdempotencyKey(unit_id=unit.unit_id, key=idempotency_key, request_hash=fingerprint,
                           report_id=report_id, created_at=now),
        )
        if not claimed:
            first = await repository.idempotency_key(session, unit.unit_id, idempotency_key)
            assert first is not None
            if first.request_hash != fingerprint:
                raise Conflict("该 Idempotency-Key 已用于另一份报告 / This Idempotency-Key was used with another body")
            return Accepted(report_id=first.report_id, replayed=True)

    report = submission.to_report()
    # One enterprise's reports are accepted one at a time, so that they reach Kafka in acceptance order.
    await repository.lock_enterprise(session, report.enterprise.credit_code)
    event = ReportAccepted(trace_id=report_id, report_id=report_id, unit_id=unit.unit_id, accepted_at=now,
                           report=report, occurred_at=now)
    contact = submission.contact
    await repository.add_report_with_event(
        session,
        Report(
            id=report_id, unit_id=unit.unit_id, kind=report.kind.value, region_code=report.region_code,
            credit_code=report.enterprise.credit_code, accepted_at=now, body=report.model_dump(mode="json"),
            contact_encrypted=cipher.encrypt(contact.model_dump_json().encode()) if contact else None,
            status="accepted", assessment=None, alert_ids=[], updated_at=now,
        ),
        outbox_row(OutboxMessage, Topic.reports.value, event, now),
    )
    return Accepted(report_id=report_id, replayed=False)


async def get_report(session: AsyncSession, *, caller: Caller, report_id: str) -> Report:
    report = await repository.report_by_id(session, report_id)
    if report is None or not (caller.is_admin or caller.unit_id == report.unit_id):
        # A unit learns nothing about other units' reports, not even that they exist.
        raise NotFound("未找到该报告 / Report not found")
    return report


def decrypt_contact(report: Report, cipher: Fernet) -> dict[str, Any] | None:
    if report.contact_encrypted is None:
        return None
    decoded: dict[str, Any] = json.loads(cipher.decrypt(report.contact_encrypted))
    return decoded


def report_view(report: Report, cipher: Fernet) -> ReportView:
    """A report as its unit and the admin see it, contact included."""
    return ReportView(
        report_id=report.id, unit_id=report.unit_id, status=report.status,
        accepted_at=report.accepted_at, report=report.body,
        contact=decrypt_contact(report, cipher), assessment=report.assessment,
        alert_ids=report.alert_ids,
    )


async def list_reports(
    session: AsyncSession, *, caller: Caller, since: datetime | None, kind: str | None, region_code: str | None,
    cursor: str | None, limit: int,
) -> ReportPage:
    """One page of reports newest first (a unit's own, or all for the admin) and the cursor of the next page."""
    rows = await repository.list_reports(
        session, unit_id=caller.unit_id, since=since, kind=kind, region_code=region_code,
        before=_decode_cursor(cursor), limit=limit + 1,
    )
    items = [_summary(row) for row in rows[:limit]]
    next_cursor = _encode_cursor(rows[limit - 1]) if len(rows) > limit else None
    return ReportPage(items=items, next_cursor=next_cursor)


def _summary(report: Report) -> ReportSummary:
    assessment = report.assessment or {}
    return ReportSummary(
        report_id=report.id, status=report.status, kind=report.kind,
        region_code=report.region_code, enterprise_name=report.body["enterprise"]["name"],
        accepted_at=report.accepted_at, occurred_at=report.body["occurred_at"], level=assessment.get("level"),
        score=assessment.get("score"), alert_ids=report.alert_ids,
    )


def _encode_cursor(report: Report) -> str:
    return base64.urlsafe_b64encode(f"{report.accepted_at.isoformat()}|{report.id}".encode()).decode()


def _decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if cursor is None:
        return None
    try:
        at, report_id = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        # A report id is a UUID: anything else (a NUL, a long text) never reaches the database.
        return datetime.fromisoformat(at).astimezone(UTC), str(uuid.UUID(report_id))
    except ValueError as error:
        raise ApiError("无效的分页游标 / Invalid cursor") from error


async def record_downstream_events(
    session: AsyncSession, events: Sequence[ReportAssessed | AlertChanged], now: datetime
) -> None:
    """Advance report status from consumed events. Idempotent: replays and reordering change nothing."""
    report_ids = {
        report_id
        for event in events
        for report_id in ([event.report_id] if isinstance(event, ReportAssessed) else event.report_ids)
    }
    reports = await repository.reports_for_update(session, sorted(report_ids))
    for event in events:
        if isinstance(event, ReportAssessed):
            report = reports.get(event.report_id)
            if report is None:
                continue
            if report.assessment is None or not event.replay:
                report.assessment = _assessment_view(event)
            _raise_status(report, "assessed", now)
        else:
            for report_id in event.report_ids:
                report = reports.get(report_id)
                if report is None:
                    continue
                if event.alert_id not in report.alert_ids:
                    report.alert_ids = [*report.alert_ids, event.alert_id]
                _raise_status(report, "alerted", now)
    await session.flush()


def _raise_status(report: Report, status: str, now: datetime) -> None:
    if STATUS_RANK[status] > STATUS_RANK[report.status]:
        report.status = status
    report.updated_at = now


def _assessment_view(event: ReportAssessed) -> dict[str, Any]:
    return {
        "report_id": event.report_id,
        "score": event.score,
        "level": event.level.value,
        "rubric_version": event.rubric_version,
        "reasons": [reason.model_dump() for reason in event.reasons],
        "assessed_at": event.assessed_at.isoformat(),
    }
