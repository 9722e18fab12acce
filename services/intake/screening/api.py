"""HTTP routes of screening rounds. Thin: authenticate, call the service, shape the answer.

The router brings its own lifespan (FastAPI merges it into the app's when the router is included): it runs the
screening worker (due notices, coverage gauges) inside intake's lifespan, after intake's context exists.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Query, Request, Response

from services.intake.api import CallerDep, Context
from services.intake.context import IntakeContext
from services.intake.screening import service
from services.intake.screening.metrics import SCREENING_RETURNS
from services.intake.screening.models import ScreeningReturn, ScreeningRound
from services.intake.screening.schemas import (
    MissingUnit,
    RegionCoverage,
    ReturnSubmit,
    ReturnView,
    RoundCreate,
    RoundCreated,
    RoundItem,
    RoundList,
    RoundView,
    UnitRoundItem,
    UnitRoundView,
)
from services.intake.screening.worker import ScreeningWorker
from shared.db import transaction
from shared.events import ScreeningStatus, utcnow
from shared.runtime import Workers

log = logging.getLogger(__name__)


@asynccontextmanager
async def screening_lifespan(app: FastAPI) -> AsyncIterator[None]:
    context: IntakeContext = app.state.context
    worker = ScreeningWorker(sessions=context.sessions, on_outbox=context.relay.wake)
    app.state.screening_worker = worker
    workers = Workers()
    workers.start("screening", worker)
    try:
        yield
    finally:
        await workers.stop()


router = APIRouter(prefix="/v1/screening-rounds", tags=["screening"], lifespan=screening_lifespan)


def get_worker(request: Request) -> ScreeningWorker:
    worker: ScreeningWorker = request.app.state.screening_worker
    return worker


WorkerDep = Annotated[ScreeningWorker, Depends(get_worker)]


@router.post("", status_code=201, response_model=RoundCreated)
async def create_round(body: RoundCreate, caller: CallerDep, context: Context, worker: WorkerDep) -> RoundCreated:
    """Open a screening round over a province, city or county (admin only). Every unit active in the region now is
    expected to answer; units registered or deactivated later do not change that."""
    service.ensure_admin(caller.unit_id)
    async with transaction(context.sessions) as session:
        round_ = await service.create_round(session, name=body.name, region_code=body.region_code,
                                            opens_at=body.opens_at, due_at=body.due_at, now=utcnow())
    context.relay.wake()
    worker.coverage_changed()
    log.info("screening round created", extra={"trace_id": round_.id, "region_code": round_.region_code,
                                               "expected": round_.expected_count})
    return RoundCreated(round_id=round_.id)


@router.get("", response_model=RoundList)
async def list_rounds(
    caller: CallerDep, context: Context, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> RoundList:
    """The administrator's rounds (all) or a unit's (those it is expected to answer): open rounds first (soonest
    due first), then upcoming ones, then closed ones."""
    now = utcnow()
    async with transaction(context.sessions) as session:
        if caller.unit_id is None:
            rounds = await service.list_rounds(session, now=now, limit=limit)
            return RoundList(items=[
                RoundItem(**_round_fields(item.round, now), expected=item.round.expected_count,
                          answered=item.answered)
                for item in rounds
            ])
        mine = await service.list_rounds_of_unit(session, unit_id=caller.unit_id, now=now, limit=limit)
    return RoundList(items=[
        UnitRoundItem(**_round_fields(item.round, now),
                      my_status=ScreeningStatus(item.my_status) if item.my_status else None)
        for item in mine
    ])


@router.get("/{round_id}", response_model=RoundView | UnitRoundView)
async def get_round(round_id: str, caller: CallerDep, context: Context) -> RoundView | UnitRoundView:
    """The administrator sees coverage, the units that have not answered and coverage per county; an expected unit
    sees the round and its own answer only (`my_return`, null before it answers)."""
    now = utcnow()
    async with transaction(context.sessions) as session:
        if caller.unit_id is not None:
            round_, mine = await service.round_for_unit(session, unit_id=caller.unit_id, round_id=round_id)
            return UnitRoundView(**_round_fields(round_, now), my_return=_return_view(mine) if mine else None)
        report = await service.round_report(session, round_id=round_id)
    statuses = service.count_statuses(report.tallies)
    return RoundView(
        **_round_fields(report.round, now),
        expected=sum(tally.expected for tally in report.tallies),
        answered=sum(tally.answered for tally in report.tallies),
        no_risk=statuses[ScreeningStatus.no_risk], risks_reported=statuses[ScreeningStatus.risks_reported],
        missing=[MissingUnit(unit_id=unit.unit_id, name=unit.unit_name, region_code=unit.region_code)
                 for unit in report.missing],
        by_region=[RegionCoverage(region_code=tally.region_code, expected=tally.expected, answered=tally.answered,
                                  no_risk=tally.no_risk, risks_reported=tally.risks_reported)
                   for tally in report.tallies],
        due_notified_at=report.round.due_event_at,
    )


@router.post("/{round_id}/returns", status_code=201, response_model=ReturnView)
async def submit_return(
    round_id: str, body: ReturnSubmit, caller: CallerDep, context: Context, worker: WorkerDep, response: Response
) -> ReturnView:
    """A unit answers a round: `no_risk` (本期无风险隐患, no reports) or `risks_reported` with at least one of its own
    reports. 201 for the first answer; a later one replaces it until `due_at` (200); 409 before `opens_at`
    (`round_not_open`) and from `due_at` on (`round_closed`)."""
    async with transaction(context.sessions) as session:
        stored = await service.submit_return(session, unit_id=caller.unit_id, round_id=round_id, submission=body,
                                             now=utcnow())
    SCREENING_RETURNS.labels(status=body.status.value).inc()
    context.relay.wake()
    worker.coverage_changed()
    log.info("screening return stored", extra={"trace_id": round_id, "unit_id": caller.unit_id,
                                               "status": body.status.value, "revision": stored.stored.revision})
    if not stored.created:
        response.status_code = 200
    return _return_view(stored.stored)


def _round_fields(round_: ScreeningRound, now: datetime) -> dict[str, object]:
    return {
        "round_id": round_.id, "name": round_.name, "region_code": round_.region_code,
        "region_level": round_.region_level, "opens_at": round_.opens_at, "due_at": round_.due_at,
        "state": service.round_state(round_, now),
    }


def _return_view(stored: ScreeningReturn) -> ReturnView:
    return ReturnView(
        round_id=stored.round_id, unit_id=stored.unit_id, status=ScreeningStatus(stored.status),
        report_ids=list(stored.report_ids), note=stored.note, revision=stored.revision,
        first_submitted_at=stored.first_submitted_at, submitted_at=stored.submitted_at,
    )
