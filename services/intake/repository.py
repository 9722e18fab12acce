"""Queries of the intake schema. Only this module speaks SQL."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import asyncpg
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import SCHEMA, Report, Unit


async def add_unit(session: AsyncSession, unit: Unit) -> None:
    session.add(unit)
    await session.flush()


async def active_unit_id_by_key_hash(session: AsyncSession, key_hash: str) -> str | None:
    """The id of the active unit whose API key has this hash (a deactivated unit's key is refused)."""
    return await session.scalar(select(Unit.id).where(Unit.key_hash == key_hash, Unit.active.is_(True)))


async def unit_by_id(session: AsyncSession, unit_id: str, *, for_update: bool = False) -> Unit | None:
    return await session.get(Unit, unit_id, with_for_update=for_update)


async def flush(session: AsyncSession) -> None:
    await session.flush()


async def lock_enterprise(session: AsyncSession, credit_code: str) -> None:
    """Hold the enterprise's advisory lock until the transaction ends: reports of one credit code are then accepted
    one after another, so their outbox ids follow their commit (acceptance) order and the relay, which publishes
    in id order, keeps it on Kafka. Reports of different enterprises do not wait for each other."""
    await session.execute(select(func.pg_advisory_xact_lock(enterprise_lock_key(credit_code))))


def enterprise_lock_key(credit_code: str) -> int:
    """The advisory lock key of one enterprise's report order (a signed 64-bit number)."""
    return int.from_bytes(hashlib.sha256(f"report-order:{credit_code}".encode()).digest()[:8], "big", signed=True)


# ------------------------------------------------------------------------------------------- group commit
# The submission path of `services.intake.writer`: many submissions (concurrent single reports, batch items) are
# stored in ONE transaction on a raw asyncpg connection, in a fixed number of statements whatever their number:
#   1. `BEGIN` and every enterprise lock of the group (one simple-query round trip);
#   2. one statement (prepared, cached by asyncpg per connection) that claims the idempotency keys and inserts the
#      reports and their outbox rows from arrays (`unnest`), returning the rows whose key was used before;
#   3. only when some key was used before: one query for those keys' first answers;
#   4. `COMMIT`.
# Lock order, so that two groups (or a group and another replica's) never wait for each other crosswise: the
# enterprise locks first, sorted by key; then the idempotency keys, inserted sorted by (unit, key).


@dataclass(slots=True)
class NewReport:
    """One submission to store: its report row, its outbox row and its optional idempotency key. (Not frozen: one
    is built per report, and a frozen dataclass's `__init__` sets each of its 13 fields through
    `object.__setattr__`, ~1 µs a report; nothing changes one once built.)"""

    id: str
    unit_id: str
    kind: str
    region_code: str
    credit_code: str
    accepted_at: datetime
    body_json: str
    contact_encrypted: bytes | None
    key: str | None
    request_hash: str
    event_id: str
    topic: str
    payload: str


_ACCEPT_GROUP = f"""
WITH input AS (
    SELECT * FROM unnest($1::int[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                         $7::timestamptz[], $8::text[], $9::bytea[], $10::text[], $11::text[], $12::text[],
                         $13::text[], $14::text[])
        AS t(ord, id, unit_id, kind, region_code, credit_code, accepted_at, body, contact, key, request_hash,
             event_id, topic, payload)
),
claim AS (
    INSERT INTO {SCHEMA}.idempotency_keys (unit_id, key, request_hash, report_id, created_at)
    SELECT unit_id, key, request_hash, id, accepted_at FROM input WHERE key IS NOT NULL ORDER BY unit_id, key
    ON CONFLICT (unit_id, key) DO NOTHING
    RETURNING unit_id, key
),
accepted AS (
    SELECT input.* FROM input
    WHERE input.key IS NULL
       OR EXISTS (SELECT 1 FROM claim WHERE claim.unit_id = input.unit_id AND claim.key = input.key)
),
report AS (
    INSERT INTO {SCHEMA}.reports (id, unit_id, kind, region_code, credit_code, accepted_at, body, contact_encrypted,
                                  status, assessment, alert_ids, updated_at)
    SELECT id, unit_id, kind, region_code, credit_code, accepted_at, CAST(body AS JSONB), contact, 'accepted',
           NULL, '[]'::jsonb, accepted_at
    FROM accepted ORDER BY ord
),
event AS (
    INSERT INTO {SCHEMA}.outbox (event_id, topic, payload, created_at)
    SELECT event_id, topic, payload, accepted_at FROM accepted ORDER BY ord
)
SELECT ord FROM input WHERE NOT EXISTS (SELECT 1 FROM accepted WHERE accepted.ord = input.ord)
"""
# ORDER BY ord: outbox ids (a sequence, drawn row by row) follow the group's order, so one enterprise's reports in
# one group reach Kafka in the order they were submitted.

_FIRST_ANSWERS = f"""
SELECT keys.unit_id, keys.key, keys.request_hash, keys.report_id
FROM {SCHEMA}.idempotency_keys AS keys
JOIN unnest($1::text[], $2::text[]) AS wanted(unit_id, key) ON keys.unit_id = wanted.unit_id AND keys.key = wanted.key
"""


async def begin_with_enterprise_locks(connection: asyncpg.Connection, credit_codes: Sequence[str]) -> None:
    """Open the transaction and take the enterprise lock of every credit code (`lock_enterprise`, sorted), in one
    round trip. The lock keys are integers computed here, so writing them into the statement is safe."""
    keys = sorted({enterprise_lock_key(code) for code in credit_codes})
    statement = "BEGIN"
    if keys:
        statement += (f"; SELECT pg_advisory_xact_lock(k) FROM unnest('{{{','.join(map(str, keys))}}}'::bigint[])"
                      " AS k")
    await connection.execute(statement)


async def accept_group(connection: asyncpg.Connection,
                       reports: Sequence[NewReport]) -> list[tuple[str, str] | None]:
    """Store the reports of a group, in the open transaction; per report, in order: None when it was stored now,
    or `(request_hash, report_id)` of its key's first answer when its key was used before (nothing stored then).
    Keys must be distinct per unit within `reports` (the writer answers repeats from their first occurrence)."""
    # One array per column, in the statement's order (a comprehension per column: no per-report tuple and loop).
    columns: list[list[Any]] = [
        list(range(len(reports))), [r.id for r in reports], [r.unit_id for r in reports], [r.kind for r in reports],
        [r.region_code for r in reports], [r.credit_code for r in reports], [r.accepted_at for r in reports],
        [r.body_json for r in reports], [r.contact_encrypted for r in reports], [r.key for r in reports],
        [r.request_hash for r in reports], [r.event_id for r in reports], [r.topic for r in reports],
        [r.payload for r in reports],
    ]
    refused = [row[0] for row in await connection.fetch(_ACCEPT_GROUP, *columns)]
    answers: list[tuple[str, str] | None] = [None] * len(reports)
    if not refused:
        return answers
    # A separate statement: its snapshot is taken now, so it sees a key whose first transaction committed while
    # ours waited for it (the claim above skipped that key, but its own snapshot predates that commit).
    wanted = [reports[ordinal] for ordinal in refused]
    rows = await connection.fetch(_FIRST_ANSWERS, [r.unit_id for r in wanted], [r.key for r in wanted])
    first = {(row["unit_id"], row["key"]): (row["request_hash"], row["report_id"]) for row in rows}
    for ordinal in refused:
        report = reports[ordinal]
        answers[ordinal] = first[(report.unit_id, cast(str, report.key))]
    return answers


async def commit(connection: asyncpg.Connection) -> None:
    await connection.execute("COMMIT")


async def rollback(connection: asyncpg.Connection) -> None:
    await connection.execute("ROLLBACK")


async def report_by_id(session: AsyncSession, report_id: str) -> Report | None:
    return await session.get(Report, report_id)


async def list_reports(
    session: AsyncSession, *, unit_id: str | None, since: datetime | None, kind: str | None,
    region_code: str | None, before: tuple[datetime, str] | None, limit: int,
) -> Sequence[Report]:
    query = select(Report).order_by(Report.accepted_at.desc(), Report.id.desc()).limit(limit)
    if unit_id is not None:
        query = query.where(Report.unit_id == unit_id)
    if since is not None:
        query = query.where(Report.accepted_at >= since)
    if kind is not None:
        query = query.where(Report.kind == kind)
    if region_code is not None:
        query = query.where(Report.region_code == region_code)
    if before is not None:
        query = query.where(func.row(Report.accepted_at, Report.id) < func.row(*before))
    return (await session.scalars(query)).all()


@dataclass(frozen=True)
class StatusChange:
    """What a batch of downstream events does to one report (`service.status_changes` folds them in order)."""

    report_id: str
    assessment: dict[str, Any] | None  # the latest assessment that is not a replay: replaces the stored one
    replayed_assessment: dict[str, Any] | None  # the first replayed one: kept only when none is stored
    status: str  # the highest status the events reach (never lowers the stored one)
    alert_ids: list[str]  # in the order seen; each is appended when the report does not list it yet


def _status_rank_sql(column: str, ranks: dict[str, int]) -> str:
    return "CASE " + column + "".join(f" WHEN '{status}' THEN {rank}" for status, rank in ranks.items()) + " END"


async def apply_status_changes(session: AsyncSession, changes: Sequence[StatusChange], ranks: dict[str, int],
                               now: datetime) -> None:
    """Apply a batch's status changes in one statement, without reading the reports (their bodies are large):
    each column is one array, unnested. Reports not stored here are skipped. `ranks` orders the statuses."""
    if not changes:
        return
    changes = sorted(changes, key=lambda change: change.report_id)  # row locks in one order across replicas
    statement = text(f"""
        UPDATE {SCHEMA}.reports AS r SET
            assessment = COALESCE(CAST(v.assessment AS JSONB), r.assessment, CAST(v.replayed AS JSONB)),
            status = CASE WHEN {_status_rank_sql("v.status", ranks)} > {_status_rank_sql("r.status", ranks)}
                          THEN v.status ELSE r.status END,
            alert_ids = r.alert_ids || COALESCE(
                (SELECT jsonb_agg(new.id ORDER BY new.position)
                 FROM jsonb_array_elements_text(CAST(v.alert_ids AS JSONB)) WITH ORDINALITY AS new(id, position)
                 WHERE NOT r.alert_ids ? new.id),
                '[]'::jsonb),
            updated_at = :now
        FROM unnest(CAST(:ids AS VARCHAR[]), CAST(:assessments AS TEXT[]), CAST(:replayed AS TEXT[]),
                    CAST(:statuses AS VARCHAR[]), CAST(:alert_ids AS TEXT[]))
             AS v(id, assessment, replayed, status, alert_ids)
        WHERE r.id = v.id
    """)
    await session.execute(statement, {
        "now": now,
        "ids": [change.report_id for change in changes],
        "assessments": [_json_or_none(change.assessment) for change in changes],
        "replayed": [_json_or_none(change.replayed_assessment) for change in changes],
        "statuses": [change.status for change in changes],
        "alert_ids": [json.dumps(change.alert_ids) for change in changes],
    })


def _json_or_none(value: dict[str, Any] | None) -> str | None:
    return None if value is None else json.dumps(value, ensure_ascii=False)
