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
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake import repository
from services.intake.models import Report, Unit
from services.intake.schemas import ReportPage, ReportSummary, ReportView, UnitKey
from services.intake.signin.service import end_sessions_of_unit
from services.intake.validation import ReportSubmission
from shared.auth import Caller, PrincipalCache, hash_token, new_token
from shared.events import AlertChanged, ReportAccepted, ReportAssessed, Topic
from shared.http import ApiError, Conflict, NotFound
from shared.outbox import outbox_values
from shared.validation_errors import describe_validation_errors

STATUS_RANK = {"accepted": 0, "assessed": 1, "alerted": 2}
NO_SUCH_UNIT = "没有该上报单位 / No such reporting unit"
DEFAULT_KEY_CACHE_SECONDS = 5.0


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
    await end_sessions_of_unit(session, unit_id=unit.id)  # the form's sign-ins made with the old key end too
    invalidate_unit_key(unit.id)
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
    invalidate_unit_key(unit.id)


async def _active_unit_id_from_database(session: AsyncSession, key_hash: str) -> str | None:
    return await repository.active_unit_id_by_key_hash(session, key_hash)


UNIT_KEYS = PrincipalCache(_active_unit_id_from_database, ttl_seconds=DEFAULT_KEY_CACHE_SECONDS)
"""Key hash → active unit id, kept a few seconds in this process (`shared.auth.PrincipalCache`)."""


async def active_unit_id(session: AsyncSession, key_hash: str) -> str | None:
    """Who holds the API key with this hash: an active unit's id, or None (the caller lookup of `api`). Answered
    from `UNIT_KEYS` for a few seconds after a hit; `invalidate_unit_key` ends that at once on this process."""
    return await UNIT_KEYS(session, key_hash)


def invalidate_unit_key(unit_id: str | None = None) -> None:
    """Forget the cached keys of `unit_id` (every unit's when None) in this process: call it once a change that
    rotates or revokes a unit's key, or deactivates the unit, has COMMITTED (e.g. from a background task of the
    route, which runs after the commit). Other replicas stop accepting the old key within
    `INTAKE_KEY_CACHE_SECONDS`."""
    UNIT_KEYS.invalidate(unit_id)


def configure_key_cache(ttl_seconds: float) -> None:
    """Set how long a key lookup is trusted (0 disables the cache); the app's lifespan calls it from settings."""
    UNIT_KEYS.ttl_seconds = ttl_seconds
    UNIT_KEYS.invalidate()


def request_fingerprint(raw_body: bytes) -> str:
    """Hash of the body's JSON content (key order and spacing do not matter)."""
    try:
        return content_fingerprint(json.loads(raw_body))
    except ValueError:
        return hashlib.sha256(raw_body.decode(errors="replace").encode()).hexdigest()


def content_fingerprint(content: Any) -> str:
    """Hash of parsed JSON content: the same value as `request_fingerprint` of a body holding it, so that a batch
    item and a single submission of the same report share an `Idempotency-Key` answer."""
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Submission:
    """One report to accept: the validated body, the fingerprint of its JSON content and its optional key."""

    submission: ReportSubmission
    fingerprint: str
    idempotency_key: str | None


@dataclass(frozen=True)
class Outcome:
    """What became of one submission: accepted (first time or replayed) or refused with an `ApiError`."""

    report_id: str | None = None
    replayed: bool = False
    error: ApiError | None = None


BATCH_MAX_REPORTS = 500
BATCH_MAX_BYTES = 4 * 1024 * 1024


class InvalidReport(ApiError):
    """A batch item that fails the rules of a single submission: 422 with the same details, fields relative to the
    item."""

    status_code, code, message = 422, "validation_error", "请求内容有误 / The request is invalid"


def batch_item(raw: Any) -> Submission | InvalidReport:
    """One item of `POST /v1/reports/batch`: a report body plus its optional `idempotency_key`, checked by the same
    rules as `POST /v1/reports` (the key as the `Idempotency-Key` header is: 1 to 128 characters)."""
    content = dict(raw) if isinstance(raw, dict) else raw
    key = content.pop("idempotency_key", None) if isinstance(content, dict) else None
    problems: list[dict[str, Any]] = []
    if key is not None and not (isinstance(key, str) and 1 <= len(key) <= 128):
        problems.append({"type": "string_type" if not isinstance(key, str) else
                         "string_too_short" if not key else "string_too_long",
                         "loc": ("idempotency_key",), "ctx": {"min_length": 1, "max_length": 128}})
    try:
        submission = ReportSubmission.model_validate(content)
    except ValidationError as error:
        problems = [dict(problem) for problem in error.errors(include_url=False, include_input=False)] + problems
    if problems:
        return InvalidReport(details=describe_validation_errors(problems))
    return Submission(submission, content_fingerprint(content), key)


IDEMPOTENCY_CONFLICT = "该 Idempotency-Key 已用于另一份报告 / This Idempotency-Key was used with another body"


async def accept_report(
    session: AsyncSession, *, unit: Caller, submission: ReportSubmission, fingerprint: str,
    idempotency_key: str | None, cipher: Fernet, now: datetime,
) -> Accepted:
    """Store the report and its `report.accepted` event in one transaction (the outbox).

    With an `Idempotency-Key`, the same key and body give the first answer again; another body is a conflict.
    """
    assert unit.unit_id is not None
    report_id = str(uuid.uuid4())
    report_row, event_row = _report_rows(unit.unit_id, report_id, submission, cipher, now)
    # One enterprise's reports are accepted one at a time, so that they reach Kafka in acceptance order.
    await repository.lock_enterprise(session, submission.enterprise.credit_code)
    if await repository.accept_one(session, key=idempotency_key, request_hash=fingerprint, report=report_row,
                                   outbox=event_row):
        return Accepted(report_id=report_id, replayed=False)
    assert idempotency_key is not None
    first = await repository.idempotency_key(session, unit.unit_id, idempotency_key)
    assert first is not None
    if first.request_hash != fingerprint:
        raise Conflict(IDEMPOTENCY_CONFLICT)
    return Accepted(report_id=first.report_id, replayed=True)


async def accept_reports(
    session: AsyncSession, *, unit: Caller, submissions: Sequence[Submission], cipher: Fernet, now: datetime,
) -> list[Outcome]:
    """Store every submission that may be stored, with its `report.accepted` event, in the caller's transaction;
    one outcome per submission, in order.

    Idempotency-Key rules, per key of the unit: the first submission with a new key is stored; a later one with the
    same content (in the same call or any later request, batch or single) gets the first report id, replayed; one
    with other content is a 409 `Conflict`.
    """
    assert unit.unit_id is not None
    unit_id = unit.unit_id
    outcomes: list[Outcome | None] = [None] * len(submissions)
    report_ids = [str(uuid.uuid4()) for _ in submissions]
    # The first submission of each key is its candidate; the others follow it (same content) or conflict.
    first_of_key: dict[str, int] = {}
    followers: list[tuple[int, int]] = []
    for index, item in enumerate(submissions):
        if item.idempotency_key is None:
            continue
        first = first_of_key.setdefault(item.idempotency_key, index)
        if first != index:
            followers.append((index, first))
    if first_of_key:
        claimed = await repository.claim_idempotency_keys(session, [
            {"unit_id": unit_id, "key": key, "request_hash": submissions[index].fingerprint,
             "report_id": report_ids[index], "created_at": now}
            for key, index in first_of_key.items()
        ])
        earlier = await repository.idempotency_keys(session, unit_id, [k for k in first_of_key if k not in claimed])
        for key, index in first_of_key.items():
            if key in claimed:
                continue
            stored = earlier[key]
            outcomes[index] = (Outcome(report_id=stored.report_id, replayed=True)
                               if stored.request_hash == submissions[index].fingerprint
                               else Outcome(error=Conflict(IDEMPOTENCY_CONFLICT)))
    reports: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for index, item in enumerate(submissions):
        if outcomes[index] is not None:
            continue
        if item.idempotency_key is not None and first_of_key[item.idempotency_key] != index:
            continue
        report_row, event_row = _report_rows(unit_id, report_ids[index], item.submission, cipher, now)
        reports.append(report_row)
        events.append(event_row)
        outcomes[index] = Outcome(report_id=report_ids[index])
    for index, first in followers:
        leader = outcomes[first]
        assert leader is not None
        if submissions[index].fingerprint != submissions[first].fingerprint:
            outcomes[index] = Outcome(error=Conflict(IDEMPOTENCY_CONFLICT))
        elif leader.error is not None:
            outcomes[index] = leader
        else:
            outcomes[index] = Outcome(report_id=leader.report_id, replayed=True)
    # Each enterprise's lock, in one order (sorted) so that two batches never wait for each other crosswise.
    for credit_code in sorted({report["credit_code"] for report in reports}):
        await repository.lock_enterprise(session, credit_code)
    await repository.insert_reports_with_events(session, reports, events)
    return [outcome for outcome in outcomes if outcome is not None]


def _report_rows(unit_id: str, report_id: str, submission: ReportSubmission, cipher: Fernet,
                 now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """The report row and its outbox row (column values) of one accepted submission."""
    report = submission.to_report()
    event = ReportAccepted(trace_id=report_id, report_id=report_id, unit_id=unit_id, accepted_at=now,
                           report=report, occurred_at=now)
    contact = submission.contact
    return {
        "id": report_id, "unit_id": unit_id, "kind": report.kind.value, "region_code": report.region_code,
        "credit_code": report.enterprise.credit_code, "accepted_at": now, "body": report.model_dump(mode="json"),
        "contact_encrypted": cipher.encrypt(contact.model_dump_json().encode()) if contact else None,
        "status": "accepted", "assessment": None, "alert_ids": [], "updated_at": now,
    }, outbox_values(Topic.reports.value, event, now)


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
