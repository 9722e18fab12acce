"""Business rules of screening rounds: who is expected to answer, who may answer what and when, what each side
sees, and the events that tell the federations (flush only; the edge commits).

Every change writes its `screening.v1` events to intake's outbox in the same transaction.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.intake.models import OutboxMessage
from services.intake.screening import repository
from services.intake.screening.models import ScreeningExpectedUnit, ScreeningReturn, ScreeningRound
from services.intake.screening.regions import city_code, region_level
from services.intake.screening.repository import CountyTally, RoundCounts, UnitRound
from services.intake.screening.schemas import ReturnSubmit, RoundState
from shared.events import (
    ScreeningReturnSubmitted,
    ScreeningRoundDue,
    ScreeningRoundOpened,
    ScreeningStatus,
    ScreeningUnit,
    Topic,
)
from shared.http import ApiError, Conflict, Forbidden, NotFound
from shared.outbox import outbox_row
from shared.regions import prefix_of

ROUND_NOT_FOUND = "未找到该排查轮次 / Screening round not found"


class InvalidField(ApiError):
    """A 422 about one field of the body, in the same shape as the request-validation errors."""

    status_code, code, message = 422, "validation_error", "请求内容有误 / The request is invalid"

    def __init__(self, field: str, reason: str, *, kind: str = "value_error") -> None:
        super().__init__(details=[{"field": field, "location": "body", "type": kind, "reason": reason}])


class RoundNotOpen(Conflict):
    code, message = "round_not_open", "本轮排查尚未开始 / This screening round is not open yet"


class RoundClosed(Conflict):
    code, message = "round_closed", "本轮排查已截止,不能再提交或修改回复 / This screening round is closed"


@dataclass(frozen=True)
class StoredReturn:
    stored: ScreeningReturn
    created: bool = False


@dataclass(frozen=True)
class RoundReport:
    """A round as the administrator sees it: coverage per county and the units that have not answered."""

    round: ScreeningRound
    tallies: list[CountyTally]
    missing: Sequence[ScreeningExpectedUnit]


@dataclass(frozen=True)
class DueNotices:
    rounds: int
    events: int


def round_state(round_: ScreeningRound, now: datetime) -> RoundState:
    if now < round_.opens_at:
        return "upcoming"
    return "open" if now < round_.due_at else "closed"


def _round_fields(round_: ScreeningRound, county: str) -> dict[str, Any]:
    return {
        "trace_id": round_.id, "round_id": round_.id, "round_name": round_.name,
        "round_region_code": round_.region_code, "county": county, "opens_at": round_.opens_at,
        "due_at": round_.due_at,
    }


async def create_round(
    session: AsyncSession, *, name: str, region_code: str, opens_at: datetime, due_at: datetime, now: datetime
) -> ScreeningRound:
    """A new round over `region_code`; every unit active there now is expected to answer (a snapshot)."""
    level = region_level(region_code)
    if level is None:  # the request model checks it too; the rule lives here
        raise InvalidField("region_code", "应为省级、地市级或县级区划代码 / must be a province, city or county code")
    if due_at <= opens_at:
        raise InvalidField("due_at", "截止时间应晚于开始时间 / must be after opens_at")
    if due_at <= now:
        raise InvalidField("due_at", "截止时间已过 / must be in the future")
    units = await repository.active_units_in_region(session, prefix_of(region_code))
    if not units:
        raise InvalidField("region_code", "该地区没有在册的上报单位 / no active reporting unit in this region")

    round_ = ScreeningRound(
        id=str(uuid.uuid4()), name=name, region_code=region_code, region_level=level.value, opens_at=opens_at,
        due_at=due_at, expected_count=len(units), created_at=now, due_event_at=None,
    )
    expected = [
        ScreeningExpectedUnit(round_id=round_.id, unit_id=unit.id, unit_name=unit.name, region_code=unit.region_code)
        for unit in units
    ]
    by_county: dict[str, list[ScreeningUnit]] = defaultdict(list)
    for unit in units:
        by_county[unit.region_code].append(ScreeningUnit(unit_id=unit.id, name=unit.name))
    outbox = [
        outbox_row(OutboxMessage, Topic.screening.value, ScreeningRoundOpened(
            **_round_fields(round_, county), occurred_at=now, round_expected=len(units), county_count=len(by_county),
            expected=len(county_units), units=county_units,
        ), now)
        for county, county_units in sorted(by_county.items())
    ]
    await repository.add_round(session, round_, expected, outbox)
    return round_


def ensure_admin(unit_id: str | None) -> None:
    """Opening rounds and seeing every unit's answer is for the administrator (whose caller has no unit)."""
    if unit_id is not None:
        raise Forbidden("仅管理员可执行此操作 / Only the administrator may do this")


async def submit_return(
    session: AsyncSession, *, unit_id: str | None, round_id: str, submission: ReturnSubmit, now: datetime
) -> StoredReturn:
    """Store a unit's answer to a round (replacing its earlier one) with its `screening.return_submitted` event.

    Only an expected unit answers, only between `opens_at` and `due_at` (and before the due notice went out), and
    only with its own reports: a report of another unit is refused exactly like one that does not exist.
    """
    if unit_id is None:
        raise Forbidden("排查回复须由上报单位提交 / A screening return is submitted with a unit's key")
    round_ = await repository.round_for_return(session, round_id)
    expected = await repository.expected_unit(session, round_id, unit_id) if round_ is not None else None
    if round_ is None or expected is None:
        # A unit learns nothing about rounds it is not part of.
        raise NotFound(ROUND_NOT_FOUND)
    if now < round_.opens_at:
        raise RoundNotOpen()
    if now >= round_.due_at or round_.due_event_at is not None:
        raise RoundClosed()
    report_ids = submission.report_id_strings
    if report_ids and set(report_ids) - await repository.own_report_ids(session, unit_id, report_ids):
        raise InvalidField(
            "report_ids", "报告不存在或不是本单位提交的 / unknown report, or not one this unit submitted",
            kind="unknown_report",
        )
    stored = await repository.upsert_return(
        session, round_id=round_id, unit_id=unit_id, status=submission.status.value, report_ids=report_ids,
        note=submission.note, now=now,
    )
    event = ScreeningReturnSubmitted(
        **_round_fields(round_, expected.region_code), occurred_at=now, unit_id=unit_id,
        unit_name=expected.unit_name, status=submission.status, report_ids=report_ids,
        report_count=len(report_ids), revision=stored.revision, submitted_at=now,
    )
    await repository.add_outbox(session, [outbox_row(OutboxMessage, Topic.screening.value, event, now)])
    return StoredReturn(stored=stored, created=stored.revision == 1)


async def round_report(session: AsyncSession, *, round_id: str) -> RoundReport:
    """The whole round (administrator)."""
    round_ = await repository.round_by_id(session, round_id)
    if round_ is None:
        raise NotFound(ROUND_NOT_FOUND)
    return RoundReport(
        round=round_, tallies=await repository.county_tallies(session, round_id),
        missing=await repository.missing_units(session, round_id),
    )


async def round_for_unit(
    session: AsyncSession, *, unit_id: str, round_id: str
) -> tuple[ScreeningRound, ScreeningReturn | None]:
    """A round the unit is expected in, with its own answer; 404 for any other round."""
    round_ = await repository.round_by_id(session, round_id)
    if round_ is None or await repository.expected_unit(session, round_id, unit_id) is None:
        raise NotFound(ROUND_NOT_FOUND)
    return round_, await repository.return_of(session, round_id, unit_id)


async def list_rounds(session: AsyncSession, *, now: datetime, limit: int) -> list[RoundCounts]:
    return await repository.list_rounds(session, now=now, limit=limit)


async def list_rounds_of_unit(session: AsyncSession, *, unit_id: str, now: datetime, limit: int) -> list[UnitRound]:
    return await repository.list_rounds_of_unit(session, unit_id=unit_id, now=now, limit=limit)


async def write_due_notices(session: AsyncSession, *, now: datetime, limit: int) -> DueNotices:
    """Claim the rounds that reached `due_at` and write one `screening.round_due` event per county of each (the
    county's coverage and the units that did not answer), in the transaction that claims them: exactly once."""
    rounds = await repository.claim_due_rounds(session, now=now, limit=limit)
    rows: list[OutboxMessage] = []
    for round_ in rounds:
        missing: dict[str, list[ScreeningUnit]] = defaultdict(list)
        for unit in await repository.missing_units(session, round_.id):
            missing[unit.region_code].append(ScreeningUnit(unit_id=unit.unit_id, name=unit.unit_name))
        for tally in await repository.county_tallies(session, round_.id):
            event = ScreeningRoundDue(
                **_round_fields(round_, tally.region_code), occurred_at=now, expected=tally.expected,
                answered=tally.answered, no_risk=tally.no_risk, risks_reported=tally.risks_reported,
                missing=missing.get(tally.region_code, []),
            )
            rows.append(outbox_row(OutboxMessage, Topic.screening.value, event, now))
    await repository.add_outbox(session, rows)
    return DueNotices(rounds=len(rounds), events=len(rows))


async def coverage_by_city(session: AsyncSession, *, now: datetime) -> dict[str, tuple[int, int]]:
    """(expected, answered) per city code over the rounds open at `now`."""
    cities: dict[str, tuple[int, int]] = {}
    for county, expected, answered in await repository.coverage_by_county(session, now=now):
        city = city_code(county)
        before = cities.get(city, (0, 0))
        cities[city] = (before[0] + expected, before[1] + answered)
    return cities


def count_statuses(tallies: Sequence[CountyTally]) -> dict[ScreeningStatus, int]:
    return {
        ScreeningStatus.no_risk: sum(tally.no_risk for tally in tallies),
        ScreeningStatus.risks_reported: sum(tally.risks_reported for tally in tallies),
    }
