"""HTTP routes of intake. Thin: authenticate, call the service in the request's one session
(`shared.deps.SessionDep`, committed before the answer is sent), shape the answer. Submissions (single and batch)
are stored through the group-commit writer instead (`services.intake.writer`), committed before the answer too."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated, Any, cast

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy.ext.asyncio import AsyncSession

from services.intake import service
from services.intake.context import IntakeContext
from services.intake.metrics import REPORTS_ACCEPTED, REPORTS_REJECTED
from services.intake.schemas import (
    BatchResults,
    ReportAcceptedResponse,
    ReportBatch,
    ReportPage,
    ReportView,
    UnitCreate,
    UnitCreated,
    UnitKey,
)
from services.intake.signin.service import COOKIE_AUTH
from services.intake.validation import ReportSubmission
from shared.auth import Caller, Credentials, caller_dependency, ensure_admin
from shared.db import SessionFactory
from shared.deps import SessionDep, request_context
from shared.events import utcnow
from shared.http import ApiError, RateLimited
from shared.openapi import error_responses
from shared.report import ReportKind

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1")

Context = Annotated[IntakeContext, Depends(request_context)]


def _count_unauthorized() -> None:
    REPORTS_REJECTED.labels(reason="unauthorized").inc()


# Bearer keys (scripts) or the form's session cookie (`services.intake.signin`), same rules after that.
authenticated_caller = caller_dependency(service.active_unit_id, on_rejected=_count_unauthorized,
                                         session_cookie=COOKIE_AUTH)


async def get_caller(context: Context, caller: Annotated[Caller, Depends(authenticated_caller)]) -> Caller:
    """The admin, or a unit within its rate limit (`UNIT_RATE_LIMIT` requests a minute, per process)."""
    if caller.unit_id is not None:
        retry_after = context.rate_limiter.acquire(caller.unit_id)
        if retry_after:
            REPORTS_REJECTED.labels(reason="rate_limited").inc()
            raise RateLimited(int(retry_after))
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


async def submitting_unit(request: Request, credentials: Credentials) -> Caller:
    """The caller of a submission route: `authenticated_caller` in a short session of its own, closed before the
    route runs. A submission waits for the group-commit writer, which needs a pooled connection: a request session
    that looked the key up (cache miss, cookie) would hold one through that wait, and a burst of such requests
    would take the whole pool from the writer. A cached key opens no connection at all.

    Hot path: it takes the context from the app itself rather than through the `Context` dependency (each
    dependency FastAPI solves costs a few µs per request on the submission routes)."""
    context: IntakeContext = request.app.state.context
    session = SessionOnDemand(context.sessions)
    try:
        return await authenticated_caller(request, cast(AsyncSession, session), credentials)
    finally:
        await session.close()


class SessionOnDemand:
    """Stands in for an `AsyncSession` that is opened only when something uses it: the caller lookup of a
    submission whose key is cached (nearly every one) uses none, and opening and closing an unused session costs
    ~50–100 µs of CPU, a tenth of a single submission. Any attribute opens the real session (once);
    `close()` closes it if it was opened."""

    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions
        self._session: AsyncSession | None = None

    @property
    def opened(self) -> bool:
        return self._session is not None

    def __getattr__(self, name: str) -> Any:
        if self._session is None:
            self._session = self._sessions()
        return getattr(self._session, name)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


async def submitting_caller(request: Request, credentials: Credentials) -> Caller:
    """`submitting_unit` within its rate limit (as `get_caller`); one dependency, not two nested ones."""
    caller = await submitting_unit(request, credentials)
    if caller.unit_id is not None:
        context: IntakeContext = request.app.state.context
        retry_after = context.rate_limiter.acquire(caller.unit_id)
        if retry_after:
            REPORTS_REJECTED.labels(reason="rate_limited").inc()
            raise RateLimited(int(retry_after))
    return caller


@router.post("/units", status_code=201, response_model=UnitCreated, tags=["units"],
             responses=error_responses(401, 403, 413, 422, 429, 503))
async def create_unit(body: UnitCreate, caller: CallerDep, session: SessionDep) -> UnitCreated:
    """Register a reporting unit (admin only). The API key in the answer is shown once."""
    ensure_admin(caller)
    unit, api_key = await service.create_unit(session, name=body.name, region_code=body.region_code, now=utcnow())
    return UnitCreated(unit_id=unit.id, name=unit.name, region_code=unit.region_code, api_key=api_key)


@router.post("/units/{unit_id}/key", response_model=UnitKey, tags=["units"],
             responses=error_responses(401, 403, 404, 422, 429, 503))
async def rotate_unit_key(unit_id: str, caller: CallerDep, session: SessionDep) -> UnitKey:
    """Issue the unit a new API key (admin only; shown once). The old key is refused at once; a unit whose key was
    revoked is active again."""
    ensure_admin(caller)
    return await service.rotate_key(session, unit_id)


@router.delete("/units/{unit_id}/key", status_code=204, response_class=Response, tags=["units"],
               responses=error_responses(401, 403, 404, 422, 429, 503))
async def revoke_unit_key(unit_id: str, caller: CallerDep, session: SessionDep) -> Response:
    """Revoke the unit's key (admin only): it is refused at once and the unit is inactive until a new key is
    issued."""
    ensure_admin(caller)
    await service.revoke_key(session, unit_id)
    return Response(status_code=204)


# The ordinary submission is answered by `services.intake.fastpath` in front of the app's stack, with this route's
# own functions (`submitting_caller`, `accept_report`); this route answers the rest and documents the endpoint.
@router.post("/reports", status_code=202, response_model=ReportAcceptedResponse, tags=["reports"],
             responses=error_responses(400, 401, 409, 413, 422, 429, 503))
async def submit_report(
    body: ReportSubmission,
    request: Request,
    caller: Annotated[Caller, Depends(submitting_caller)],
    idempotency_key: Annotated[str | None, Header(max_length=128, min_length=1)] = None,
) -> JSONResponse:
    """Submit a report. Once this answers 202 the report is durable and will reach the risk service.

    With an `Idempotency-Key`, a retry with the same body gets the first answer; another body gets 409.
    """
    # `request.json()` is the parse FastAPI already made of the body (Starlette keeps it on the request): the
    # same content `request_fingerprint` would parse again.
    return await accept_report(request.app.state.context, caller, body, await request.json(), idempotency_key)


async def accept_report(context: IntakeContext, caller: Caller, body: ReportSubmission, content: Any,
                        idempotency_key: str | None) -> JSONResponse:
    """What `POST /v1/reports` does once its caller is known and its body valid (`content`: the body's parsed
    JSON): store the report, count and log it, answer 202. Shared by the FastAPI route and its fast path
    (`services.intake.fastpath`), so that both answer, count and log alike."""
    if caller.is_admin:
        raise ApiError("报告须由上报单位提交 / Reports are submitted with a unit's key")
    # The fingerprint only matters with a key (it is what a retry is compared by).
    fingerprint = service.content_fingerprint(content) if idempotency_key is not None else ""
    # Stored through the group-commit writer (no request session): committed once this returns.
    [outcome] = await service.submit_reports(
        context.writer, unit=caller, submissions=[service.Submission(body, fingerprint, idempotency_key)],
        cipher=context.cipher, now=utcnow(),
    )
    if outcome.error is not None:
        REPORTS_REJECTED.labels(reason=outcome.error.code).inc()
        raise outcome.error
    assert outcome.report_id is not None
    if not outcome.replayed:
        REPORTS_ACCEPTED.labels(kind=body.kind.value).inc()
        log.info("report accepted", extra={"trace_id": outcome.report_id, "kind": body.kind.value,
                                           "region_code": body.region_code})
    return JSONResponse(
        {"report_id": outcome.report_id, "status": "accepted"}, status_code=202,  # `ReportAcceptedResponse`
        headers={"Idempotent-Replayed": "true"} if outcome.replayed else None,
    )


@router.post("/reports/batch", status_code=200, response_model=BatchResults, tags=["reports"],
             responses=error_responses(400, 401, 413, 422, 429, 503))
async def submit_batch(
    body: ReportBatch,
    request: Request,
    caller: Annotated[Caller, Depends(submitting_unit)],
) -> JSONResponse:
    """Submit up to 500 reports at once (partner systems: hotlines, labour-inspection systems); body ≤ 4 MiB.

    Every item is checked like a single `POST /v1/reports` and answered in `results`, in input order: 202 with its
    `report_id`, or 409/422 with the error a single submission would get (field names relative to the item). The
    valid items are stored in one transaction, durably once this answers 200, even when other items are refused.
    An item's `idempotency_key` works as the `Idempotency-Key` header, across batch and single submissions: the same
    key with the same report gives the first report id again; with another report, 409. The rate limit counts
    every item as one report (the whole batch is refused with 429 when the unit lacks that many).
    """
    if caller.is_admin:
        raise ApiError("报告须由上报单位提交 / Reports are submitted with a unit's key")
    assert caller.unit_id is not None
    context: IntakeContext = request.app.state.context
    retry_after = context.rate_limiter.acquire(caller.unit_id, cost=len(body.reports))
    if retry_after:
        REPORTS_REJECTED.labels(reason="rate_limited").inc(len(body.reports))
        raise RateLimited(int(retry_after))
    items = service.batch_items(body.reports)
    valid = [item for item in items if isinstance(item, service.Submission)]
    outcomes = iter(await service.submit_reports(context.writer, unit=caller, submissions=valid,
                                                 cipher=context.cipher, now=utcnow()) if valid else [])
    results: list[dict[str, object]] = []
    accepted = 0
    accepted_by_kind: dict[str, int] = {}  # counted once per kind, not once per item
    for index, item in enumerate(items):
        if isinstance(item, service.Submission):
            outcome = next(outcomes)
            if outcome.error is None:
                results.append({"index": index, "status": 202, "report_id": outcome.report_id,
                                "replayed": outcome.replayed})
                if not outcome.replayed:
                    kind = item.submission.kind.value
                    accepted_by_kind[kind] = accepted_by_kind.get(kind, 0) + 1
                    accepted += 1
                continue
            error: ApiError = outcome.error
        else:
            error = item
        REPORTS_REJECTED.labels(reason=error.code).inc()
        results.append({"index": index, "status": error.status_code,
                        "error": {"code": error.code, "message": error.message, "details": error.details}})
    for kind, count in accepted_by_kind.items():
        REPORTS_ACCEPTED.labels(kind=kind).inc(count)
    if accepted:
        log.info("report batch accepted", extra={"accepted": accepted})
    return JSONResponse({"results": results})


@router.get("/reports/{report_id}", response_model=ReportView, tags=["reports"],
            responses=error_responses(401, 404, 429, 503))
async def get_report(report_id: str, caller: CallerDep, context: Context, session: SessionDep) -> ReportView:
    """A report with its status (accepted → assessed → alerted), its assessment and its alerts."""
    report = await service.get_report(session, caller=caller, report_id=report_id)
    return service.report_view(report, context.cipher)


@router.get("/reports", response_model=ReportPage, tags=["reports"],
            responses=error_responses(400, 401, 422, 429, 503))
async def list_reports(
    caller: CallerDep,
    session: SessionDep,
    since: datetime | None = None,
    kind: ReportKind | None = None,
    region_code: Annotated[str | None, Query(pattern=r"^[0-9]{6}$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=200, description="From the previous page's next_cursor")] = None,
) -> ReportPage:
    """Reports newest first: a unit sees its own, the admin sees all. Paginate with `cursor`."""
    return await service.list_reports(
        session, caller=caller, since=since, kind=kind.value if kind else None, region_code=region_code,
        cursor=cursor, limit=limit,
    )
