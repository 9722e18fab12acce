"""Business rules of intake: units and their keys, accepting reports durably, who may read what, and the
status a report reaches as the risk and alerts services report back on Kafka. Flush only: the caller (route,
consumer) owns the transaction."""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.fernet import Fernet
from pydantic import AwareDatetime, TypeAdapter, ValidationError
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake import repository
from services.intake.models import Report, Unit
from services.intake.schemas import ReportPage, ReportSummary, ReportView, UnitKey
from services.intake.signin.service import end_sessions_of_unit
from services.intake.validation import ReportSubmission
from services.intake.writer import GroupCommitWriter, Stored
from shared.auth import Caller, PrincipalCache, hash_token, new_token
from shared.events import AlertChanged, ReportAccepted, ReportAssessed, Topic
from shared.http import ApiError, Conflict, NotFound
from shared.validation_errors import describe_validation_errors

STATUS_RANK = {"accepted": 0, "assessed": 1, "alerted": 2}
NO_SUCH_UNIT = "没有该上报单位 / No such reporting unit"
DEFAULT_KEY_CACHE_SECONDS = 5.0


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
    return hashlib.sha256(_CANONICAL_JSON.encode(content).encode()).hexdigest()


_CANONICAL_JSON = json.JSONEncoder(sort_keys=True, ensure_ascii=False, separators=(",", ":"), check_circular=False)
"""The text the fingerprint hashes: `json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))`
(the form every stored fingerprint has), from one encoder made once rather than one per call. Without the check for
circular references: parsed JSON has none, and the text is the same (~1 µs of a batch item's 6)."""


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
    if key is not None and not (isinstance(key, str) and 1 <= len(key) <= MAX_IDEMPOTENCY_KEY):
        problems.append({"type": "string_type" if not isinstance(key, str) else
                         "string_too_short" if not key else "string_too_long",
                         "loc": ("idempotency_key",), "ctx": {"min_length": 1, "max_length": MAX_IDEMPOTENCY_KEY}})
    try:
        submission = ReportSubmission.model_validate(content)
    except ValidationError as error:
        problems = [dict(problem) for problem in error.errors(include_url=False, include_input=False)] + problems
    if problems:
        return InvalidReport(details=describe_validation_errors(problems))
    return Submission(submission, _fingerprint_if_keyed(content, key), key)


MAX_IDEMPOTENCY_KEY = 128

_SUBMISSIONS = TypeAdapter(list[ReportSubmission])


def batch_items(raws: Sequence[Any]) -> list[Submission | InvalidReport]:
    """`batch_item` of every item of a batch, in order, with the same answers: when every item is a JSON object
    with a well-formed key (or none) and a valid report, which is what partner systems send, the reports are
    validated in one call (`_SUBMISSIONS`: the same model, no per-item call and exception set-up); otherwise each
    item is checked on its own by `batch_item`, which names every item's problems."""
    contents: list[dict[str, Any]] = []
    keys: list[str | None] = []
    for raw in raws:
        if not isinstance(raw, dict):
            return [batch_item(raw) for raw in raws]
        content = dict(raw)
        key = content.pop("idempotency_key", None)
        if key is not None and not (isinstance(key, str) and 1 <= len(key) <= MAX_IDEMPOTENCY_KEY):
            return [batch_item(raw) for raw in raws]
        contents.append(content)
        keys.append(key)
    try:
        submissions = _SUBMISSIONS.validate_python(contents)
    except ValidationError:
        return [batch_item(raw) for raw in raws]
    return [Submission(submission, _fingerprint_if_keyed(content, key), key)
            for submission, content, key in zip(submissions, contents, keys, strict=True)]


def _fingerprint_if_keyed(content: dict[str, Any], key: str | None) -> str:
    """The fingerprint of an item's report, needed only with a key (what a retry is compared by), as for a single
    submission: hashing an item's canonical JSON is ~6 µs of the ~45 µs this process spends on an item."""
    return content_fingerprint(content) if key is not None else ""


_DATETIME_JSON = TypeAdapter(AwareDatetime)

IDEMPOTENCY_CONFLICT = "该 Idempotency-Key 已用于另一份报告 / This Idempotency-Key was used with another body"


# ------------------------------------------------------------------------------------ submissions (group commit)

class AcceptedEvents:
    """The `report.accepted` payloads (outbox rows) of one unit's reports accepted at one instant, as
    `ReportAccepted(...).model_dump_json()` gives them, with the event model's work done once: its envelope (every
    field but `report`, the last one) is serialised by the model with stand-in ids, and each report's event and
    report ids and its report JSON (`ReportSubmission.report_json`, the same text as the `body` column) are put in.
    For a batch of 500 that is one envelope instead of 500 events each serialising its report a second time."""

    _STAND_IN_ID = "\x01"  # never in an id; JSON writes it as "\u0001"
    _STAND_IN_TIME = datetime(2000, 1, 1, tzinfo=UTC)
    _EVENT_ID = '"event_id":"00000000-0000-0000-0000-000000000000"'
    _TRACE_ID = '"trace_id":"\\u0001"'
    _REPORT_ID = '"report_id":"\\u0001"'
    _OCCURRED_AT = '"occurred_at":"2000-01-01T00:00:00Z"'
    _ACCEPTED_AT = '"accepted_at":"2000-01-01T00:00:00Z"'

    def __init__(self, unit_id: str, now: datetime) -> None:
        stamp = _DATETIME_JSON.dump_json(now).decode()  # as the model writes its datetimes
        self._envelope = (self._template(unit_id)
                          .replace(self._OCCURRED_AT, f'"occurred_at":{stamp}', 1)
                          .replace(self._ACCEPTED_AT, f'"accepted_at":{stamp}', 1))

    @classmethod
    @functools.lru_cache(maxsize=1024)
    def _template(cls, unit_id: str) -> str:
        """The unit's envelope with stand-ins for the ids and times, up to where the report goes (kept per unit:
        serialising it is most of the event model's cost for one report)."""
        # Every field but `report` (left out of the model and of its JSON); defaults (event type, schema version)
        # from the model.
        fields: dict[str, Any] = {"event_id": uuid.UUID(int=0), "trace_id": cls._STAND_IN_ID,
                                  "report_id": cls._STAND_IN_ID, "unit_id": unit_id,
                                  "accepted_at": cls._STAND_IN_TIME, "occurred_at": cls._STAND_IN_TIME}
        envelope = ReportAccepted.model_construct(**fields).model_dump_json(exclude={"report"})
        # The model changed shape (a field after `report`, ids or times written otherwise): fail loudly, never
        # publish a payload with stand-ins left in it.
        stand_ins = (cls._EVENT_ID, cls._TRACE_ID, cls._REPORT_ID, cls._OCCURRED_AT, cls._ACCEPTED_AT)
        if not envelope.endswith("}") or '"report"' in envelope or any(
                envelope.count(stand_in) != 1 for stand_in in stand_ins):
            raise AssertionError(f"ReportAccepted is no longer serialised as AcceptedEvents expects: {envelope}")
        return envelope[:-1] + ',"report":'

    def payload(self, *, event_id: str, report_id: str, report_json: str) -> str:
        """The event's JSON; `event_id` is a UUID's text and `report_id` needs no JSON escaping (a UUID too)."""
        return (self._envelope
                .replace(self._EVENT_ID, f'"event_id":"{event_id}"', 1)
                .replace(self._TRACE_ID, f'"trace_id":"{report_id}"', 1)
                .replace(self._REPORT_ID, f'"report_id":"{report_id}"', 1)
                + report_json + "}")


def new_ids(count: int) -> list[str]:
    """`count` random (version 4) UUIDs as text, as `str(uuid.uuid4())` gives them, from one read of the system's
    random source (a batch needs two per report)."""
    raw = bytearray(os.urandom(16 * count))
    ids: list[str] = []
    for start in range(0, 16 * count, 16):
        raw[start + 6] = (raw[start + 6] & 0x0F) | 0x40  # version 4
        raw[start + 8] = (raw[start + 8] & 0x3F) | 0x80  # RFC 4122 variant
        digits = raw[start:start + 16].hex()
        ids.append(f"{digits[:8]}-{digits[8:12]}-{digits[12:16]}-{digits[16:20]}-{digits[20:]}")
    return ids


def new_report(unit_id: str, item: Submission, cipher: Fernet, now: datetime,
               events: AcceptedEvents | None = None, ids: Sequence[str] | None = None) -> repository.NewReport:
    """The rows one accepted submission writes: its report, its `report.accepted` event (outbox) and its key.
    `events`: the payload builder of the unit's reports at `now`, shared by the reports stored together; `ids`: the
    report's and the event's new ids (`new_ids`)."""
    report_id, event_id = ids or new_ids(2)
    submission = item.submission
    body_json = submission.report_json()
    events = events or AcceptedEvents(unit_id, now)
    contact = submission.contact
    return repository.NewReport(
        id=report_id, unit_id=unit_id, kind=submission.kind.value, region_code=submission.region_code,
        credit_code=submission.enterprise.credit_code, accepted_at=now, body_json=body_json,
        contact_encrypted=cipher.encrypt(contact.model_dump_json().encode()) if contact else None,
        key=item.idempotency_key, request_hash=item.fingerprint, event_id=event_id,
        topic=Topic.reports.value, payload=events.payload(event_id=event_id, report_id=report_id,
                                                          report_json=body_json),
    )


async def submit_reports(writer: GroupCommitWriter, *, unit: Caller, submissions: Sequence[Submission],
                         cipher: Fernet, now: datetime) -> list[Outcome]:
    """Store every submission that may be stored, with its `report.accepted` event, through the group-commit
    writer (committed once this returns); one outcome per submission, in order.

    Idempotency-Key rules, per key of the unit: the first submission with a new key is stored; a later one with the
    same content (in the same call, a concurrent request or any later one, batch or single) gets the first report
    id, replayed; one with other content is a 409 `Conflict`. Raises `DependencyUnavailable` (503) when the
    database cannot be reached: then nothing of these submissions is stored.
    """
    assert unit.unit_id is not None
    events = AcceptedEvents(unit.unit_id, now)
    ids = new_ids(2 * len(submissions))
    results = await writer.store([new_report(unit.unit_id, item, cipher, now, events, ids[2 * index:2 * index + 2])
                                  for index, item in enumerate(submissions)])
    return [_outcome(item, result) for item, result in zip(submissions, results, strict=True)]


def _outcome(item: Submission, result: Stored | ApiError) -> Outcome:
    if isinstance(result, ApiError):
        return Outcome(error=result)
    if result.first_hash is None:
        return Outcome(report_id=result.report_id)
    if result.first_hash != item.fingerprint:
        return Outcome(error=Conflict(IDEMPOTENCY_CONFLICT))
    return Outcome(report_id=result.report_id, replayed=True)


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
    """Advance report status from consumed events, in one statement per batch. Idempotent: replays and
    reordering change nothing."""
    await repository.apply_status_changes(session, status_changes(events), STATUS_RANK, now)


def status_changes(events: Sequence[ReportAssessed | AlertChanged]) -> list[repository.StatusChange]:
    """Fold a batch's events, in order, into one change per report, with the effect of applying them one by one:
    - an assessment replaces the stored one, except a replay (a re-score under another rubric version), which
      only fills in a missing one;
    - the status only rises (accepted → assessed → alerted);
    - an alert's id is listed once per report."""
    folded: dict[str, dict[str, Any]] = {}

    def change(report_id: str, status: str) -> dict[str, Any]:
        entry = folded.setdefault(report_id, {"assessment": None, "replayed": None, "status": status,
                                              "alert_ids": []})
        if STATUS_RANK[status] > STATUS_RANK[entry["status"]]:
            entry["status"] = status
        return entry

    for event in events:
        if isinstance(event, ReportAssessed):
            entry = change(event.report_id, "assessed")
            if not event.replay:
                entry["assessment"] = _assessment_view(event)
            elif entry["assessment"] is None and entry["replayed"] is None:
                entry["replayed"] = _assessment_view(event)
        else:
            for report_id in event.report_ids:
                entry = change(report_id, "alerted")
                if event.alert_id not in entry["alert_ids"]:
                    entry["alert_ids"].append(event.alert_id)
    return [repository.StatusChange(report_id, entry["assessment"], entry["replayed"], entry["status"],
                                    entry["alert_ids"]) for report_id, entry in folded.items()]


def _assessment_view(event: ReportAssessed) -> dict[str, Any]:
    return {
        "report_id": event.report_id,
        "score": event.score,
        "level": event.level.value,
        "rubric_version": event.rubric_version,
        "reasons": [reason.model_dump() for reason in event.reasons],
        "assessed_at": event.assessed_at.isoformat(),
    }
