"""HTTP routes of intake. Thin: authenticate, call the service, shape the answer."""

from __future__ import annotations

import base64
import logging
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse

from services.intake import service
from services.intake.context import IntakeContext
from services.intake.metrics import REPORTS_ACCEPTED, REPORTS_REJECTED
from services.intake.models import Report
from services.intake.schemas import (
    ReportAcceptedResponse,
    ReportPage,
    ReportSummary,
    ReportView,
    UnitCreate,
    UnitCreated,
)
from services.intake.signin.service import COOKIE_AUTH
from services.intake.validation import ReportSubmission
from shared.auth import bearer_token, hash_token, is_admin_token, require_same_site_header
from shared.db import transaction
from shared.events import utcnow
from shared.http import ApiError, RateLimited, Unauthorized
from shared.report import ReportKind

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1")


def get_context(request: Request) -> IntakeContext:
    context: IntakeContext = request.app.state.context
    return context


Context = Annotated[IntakeContext, Depends(get_context)]


async def get_caller(request: Request, context: Context,
                     authorization: Annotated[str | None, Header()] = None) -> service.Caller:
    token = bearer_token(authorization)
    if is_admin_token(token, context.settings.admin_token):
        return service.ADMIN
    unit_id: str | None = None
    async with transaction(context.sessions) as session:
        if token is not None:
            unit = await service.unit_for_key(session, token)
            unit_id = unit.id if unit is not None else None
        elif cookie := request.cookies.get(COOKIE_AUTH.name):
            unit_id = await COOKIE_AUTH.lookup(session, hash_token(cookie))
            if unit_id is not None:
                require_same_site_header(request)
    if unit_id is None:
        REPORTS_REJECTED.labels(reason="unauthorized").inc()
        raise Unauthorized()
    retry_after = context.rate_limiter.acquire(unit_id)
    if retry_after:
        REPORTS_REJECTED.labels(reason="rate_limited").inc()
        raise RateLimited(int(retry_after))
    return service.Caller(unit_id=unit_id)


CallerDep = Annotated[service.Caller, Depends(get_caller)]


@router.post("/units", status_code=201, response_model=UnitCreated, tags=["units"])
async def create_unit(body: UnitCreate, caller: CallerDep, context: Context) -> UnitCreated:
    """Register a reporting unit (admin only). The API key in the answer is shown once."""
    service.require_admin(caller)
    async with transaction(context.sessions) as session:
        unit, api_key = await service.create_unit(session, name=body.name, region_code=body.region_code,
                                                  now=utcnow())
    return UnitCreated(unit_id=unit.id, name=unit.name, region_code=unit.region_code, api_key=api_key)


@router.post("/reports", status_code=202, response_model=ReportAcceptedResponse, tags=["reports"])
async def submit_report(
    body: ReportSubmission,
    request: Request,
    caller: CallerDep,
    context: Context,
    idempotency_key: Annotated[str | None, Header(max_length=128, min_length=1)] = None,
) -> JSONResponse:
    """Submit a report. Once this answers 202 the report is durable and will reach the risk service.

    With an `Idempotency-Key`, a retry with the same body gets the first answer; another body gets 409.
    """
    if caller.is_admin:
        raise ApiError("报告须由上报单位提交 / Reports are submitted with a unit's key", )
    fingerprint = service.request_fingerprint(await request.body())
    try:
        async with transaction(context.sessions) as session:
            accepted = await service.accept_report(
                session, unit=caller, submission=body, fingerprint=fingerprint, idempotency_key=idempotency_key,
                cipher=context.cipher, now=utcnow(),
            )
    except ApiError as error:
        REPORTS_REJECTED.labels(reason=error.code).inc()
        raise
    if not accepted.replayed:
        REPORTS_ACCEPTED.labels(kind=body.kind.value).inc()
        context.relay.wake()
        log.info("report accepted", extra={"trace_id": accepted.report_id, "kind": body.kind.value,
                                           "region_code": body.region_code})
    return JSONResponse(
        ReportAcceptedResponse(report_id=accepted.report_id).model_dump(), status_code=202,
        headers={"Idempotent-Replayed": "true"} if accepted.replayed else None,
    )


@router.get("/reports/{report_id}", response_model=ReportView, tags=["reports"])
async def get_report(report_id: str, caller: CallerDep, context: Context) -> ReportView:
    """A report with its status (accepted → assessed → alerted), its assessment and its alerts."""
    async with transaction(context.sessions) as session:
        report = await service.get_report(session, caller=caller, report_id=report_id)
    return ReportView(
        report_id=report.id, unit_id=report.unit_id, status=report.status,
        accepted_at=report.accepted_at, report=report.body,
        contact=service.decrypt_contact(report, context.cipher), assessment=report.assessment,
        alert_ids=report.alert_ids,
    )


@router.get("/reports", response_model=ReportPage, tags=["reports"])
async def list_reports(
    caller: CallerDep,
    context: Context,
    since: datetime | None = None,
    kind: ReportKind | None = None,
    region_code: Annotated[str | None, Query(pattern=r"^[0-9]{6}$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> ReportPage:
    """Reports newest first: a unit sees its own, the admin sees all. Paginate with `cursor`."""
    async with transaction(context.sessions) as session:
        rows = await service.list_reports(
            session, caller=caller, since=since, kind=kind.value if kind else None, region_code=region_code,
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
        return datetime.fromisoformat(at).astimezone(UTC), report_id
    except ValueError as error:
        raise ApiError("无效的分页游标 / Invalid cursor") from error
