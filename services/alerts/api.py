"""HTTP API of the alerts service: the bodies directory, alerts as each body sees them, acknowledge and resolve.

Thin routes: each reads its inputs, calls one function of `service.py` in the request's one session
(`SessionDep`, committed before the response) and returns its typed answer.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from pydantic import AfterValidator, AwareDatetime, ValidationError

from services.alerts import receipt_page, repository, service
from services.alerts.context import AlertsContext
from services.alerts.schemas import (
    RECEIPT_STATUS_CODES,
    AcknowledgementPayload,
    AlertDetail,
    AlertFilters,
    AlertPage,
    BodyCreate,
    BodyCreated,
    BodyToken,
    BodyUpdate,
    BodyView,
    CoveragePage,
    MeView,
    OwnerAssign,
    ReceiptForm,
    ReceiptView,
    RegionLists,
    Resolution,
    Situation,
    VisitRecord,
    WatchlistPage,
)
from shared import regions
from shared.auth import Caller, admin_dependency, caller_dependency
from shared.deps import SessionDep, service_context
from shared.events import AlertState, RiskLevel, utcnow
from shared.openapi import error_responses
from shared.report import ReportKind

router = APIRouter(prefix="/v1")

Context = Annotated[AlertsContext, Depends(service_context)]
get_caller = caller_dependency(repository.active_body_id_for_token)
CallerDep = Annotated[Caller, Depends(get_caller)]
AdminOnly = Depends(admin_dependency(get_caller))

ADMIN_ERRORS = error_responses(401, 403, 422, 503)


# --- bodies --------------------------------------------------------------------------------------------------------


@router.post("/bodies", status_code=201, response_model=BodyCreated, dependencies=[AdminOnly], tags=["bodies"],
             responses=ADMIN_ERRORS)
async def create_body(payload: BodyCreate, session: SessionDep, context: Context) -> BodyCreated:
    """Register a union federation, mediation centre or other body, with its delivery channels. Webhooks must
    resolve to public addresses (unless private targets are allowed), robots use their official hosts; channel
    secrets are stored encrypted and never shown."""
    return await service.create_body(session, payload, utcnow(), context.settings)


@router.get("/bodies", response_model=list[BodyView], dependencies=[AdminOnly], tags=["bodies"],
            responses=ADMIN_ERRORS)
async def list_bodies(session: SessionDep, region_code: Annotated[str | None, Query(pattern=r"^\d{2,6}$")] = None,
                      include_inactive: bool = False) -> list[BodyView]:
    return await service.list_bodies(session, region_code=region_code, include_inactive=include_inactive)


@router.get("/bodies/{body_id}", response_model=BodyView, tags=["bodies"],
            responses=error_responses(401, 404, 422, 503))
async def get_body(body_id: str, caller: CallerDep, session: SessionDep) -> BodyView:
    """A body (admin, or the body itself)."""
    return await service.get_body(session, body_id, caller)


@router.get("/me", response_model=MeView, tags=["bodies"], responses=error_responses(401, 404, 422, 503))
async def get_me(caller: CallerDep, session: SessionDep) -> MeView:
    """The body the token belongs to: its id, name, kind, level, region and language (the inbox reads it)."""
    return await service.get_me(session, caller)


@router.patch("/bodies/{body_id}", response_model=BodyView, dependencies=[AdminOnly], tags=["bodies"],
              responses=error_responses(401, 403, 404, 422, 503))
async def update_body(body_id: str, payload: BodyUpdate, session: SessionDep, context: Context) -> BodyView:
    """Rename, change channels, or (de)activate a body. A deactivated body is not routed to and cannot sign in."""
    return await service.update_body(session, body_id, payload, utcnow(), context.settings)


@router.delete("/bodies/{body_id}", status_code=204, dependencies=[AdminOnly], tags=["bodies"],
               response_class=Response, responses=error_responses(401, 403, 404, 422, 503))
async def deactivate_body(body_id: str, session: SessionDep) -> Response:
    """Deactivate a body (its history stays: alerts it was told about still name it)."""
    await service.deactivate_body(session, body_id, utcnow())
    return Response(status_code=204)


@router.post("/bodies/{body_id}/token", response_model=BodyToken, dependencies=[AdminOnly], tags=["bodies"],
             responses=error_responses(401, 403, 404, 422, 503))
async def rotate_body_token(body_id: str, session: SessionDep) -> BodyToken:
    """Issue the body a new token (shown once); the old one is refused at once. Reactivates a revoked body."""
    return await service.rotate_token(session, body_id, utcnow())


@router.delete("/bodies/{body_id}/token", status_code=204, dependencies=[AdminOnly], tags=["bodies"],
               response_class=Response, responses=error_responses(401, 403, 404, 422, 503))
async def revoke_body_token(body_id: str, session: SessionDep) -> Response:
    """Revoke the body's token: it is refused at once and the body is deactivated until a new token is issued."""
    await service.revoke_token(session, body_id, utcnow())
    return Response(status_code=204)


# --- alerts --------------------------------------------------------------------------------------------------------


def _cursor(value: str | None) -> str | None:
    if value is not None:
        service.decode_cursor(value)  # ValueError: 422 with its reason
    return value


def _watch_cursor(value: str | None) -> str | None:
    if value is not None:
        service.decode_watch_cursor(value)
    return value


CursorParam = Annotated[str | None, Query(max_length=service.MAX_CURSOR_LENGTH,
                                          description="From the previous page's next_cursor"),
                        AfterValidator(_cursor)]
RegionParam = Annotated[str | None, Query(pattern=r"^\d{6}$", description="A county, city (covering its counties) "
                                          "or province code (GB/T 2260)")]


def alert_filters(
    level: RiskLevel | None = None, kind: ReportKind | None = None, state: AlertState | None = None,
    region_code: RegionParam = None,
    q: Annotated[str | None, Query(max_length=100, description="Part of the enterprise name or credit code "
                                   "(case-insensitive)")] = None,
    since: Annotated[AwareDatetime | None, Query(description="Opened at or after (ISO 8601 with offset)")] = None,
    until: Annotated[AwareDatetime | None, Query(description="Opened before (ISO 8601 with offset)")] = None,
    changed_since: Annotated[AwareDatetime | None, Query(
        description="Only alerts changed after this: the previous answer's server_time")] = None,
    has_owner: Annotated[bool | None, Query(description="Only alerts with (true) or without (false) a responsible "
                                                        "leader (包案领导)")] = None,
) -> AlertFilters:
    """The list's filters, shared by the list and its export."""
    return AlertFilters(level=level, kind=kind, state=state, region_code=region_code, q=q, since=since, until=until,
                        changed_since=changed_since, has_owner=has_owner)


FiltersDep = Annotated[AlertFilters, Depends(alert_filters)]


@router.get("/alerts", response_model=AlertPage, tags=["alerts"], responses=error_responses(401, 422, 503))
async def list_alerts(caller: CallerDep, session: SessionDep, filters: FiltersDep,
                      limit: Annotated[int, Query(ge=1, le=200)] = 50, cursor: CursorParam = None) -> AlertPage:
    """Alerts, most severe first, then oldest first, paged by a keyset cursor. A body sees the alerts it was
    notified of; admin sees all. Poll cheaply with `changed_since` = the previous answer's `server_time`."""
    return await service.list_alerts(session, caller, filters, limit=limit, cursor=cursor)


@router.get("/alerts/export.csv", tags=["alerts"], response_class=StreamingResponse,
            responses={**error_responses(401, 422, 503),
                       200: {"content": {"text/csv": {}}, "description": "UTF-8 with BOM, Chinese headers"}})
async def export_alerts(caller: CallerDep, filters: FiltersDep, context: Context) -> StreamingResponse:
    """The list with the same filters as CSV for Excel (UTF-8 with BOM, Chinese headers), streamed, at most
    `X-Export-Limit` rows (a last line says when there were more)."""
    stamp = utcnow().astimezone(service.EXPORT_TIME_ZONE).strftime("%Y%m%d-%H%M")
    return StreamingResponse(
        service.export_csv(context.sessions, caller, filters), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="alerts-{stamp}.csv"',
                 "X-Export-Limit": str(service.EXPORT_MAX_ROWS), "Cache-Control": "no-store"},
    )


@router.get("/alerts/{alert_id}", response_model=AlertDetail, tags=["alerts"],
            responses=error_responses(401, 404, 422, 503))
async def get_alert(alert_id: str, caller: CallerDep, session: SessionDep, context: Context) -> AlertDetail:
    """One alert with who was notified and why, its deliveries and escalations."""
    return await service.get_alert(session, alert_id, caller, context.policy)


@router.post("/alerts/{alert_id}/ack", response_model=AlertDetail, tags=["alerts"],
             responses=error_responses(401, 403, 404, 409, 422, 503))
async def acknowledge_alert(alert_id: str, payload: AcknowledgementPayload, caller: CallerDep, session: SessionDep,
                            context: Context, after: BackgroundTasks) -> AlertDetail:
    """The caller's body confirms receipt ("we have it"): the person's name and an optional note. Only a notified
    body may; the first union or mediation centre to confirm acknowledges the alert and stops escalation, other
    bodies' receipts are recorded; a body's repeat at the same level changes nothing."""
    alert = await service.acknowledge(session, alert_id, caller, payload, context.policy, utcnow())
    after.add_task(context.relay.wake)  # after the commit: the relay then finds the outbox row at once
    return alert


@router.post("/alerts/{alert_id}/resolve", response_model=AlertDetail, tags=["alerts"],
             responses=error_responses(401, 403, 404, 409, 422, 503))
async def resolve_alert(alert_id: str, payload: Resolution, caller: CallerDep, session: SessionDep, context: Context,
                        after: BackgroundTasks) -> AlertDetail:
    """Close the alert with its outcome and a note."""
    alert = await service.resolve(session, alert_id, caller, outcome=payload.outcome, note=payload.note,
                                  policy=context.policy, now=utcnow())
    after.add_task(context.relay.wake)
    return alert


# --- situation, regions, watch list --------------------------------------------------------------------------------


@router.get("/situation", response_model=Situation, tags=["situation"],
            responses=error_responses(401, 403, 422, 503))
async def get_situation(caller: CallerDep, session: SessionDep, region_code: RegionParam = None,
                        since: Annotated[AwareDatetime | None, Query(
                            description="Reports that occurred at or after; default: Monday 11 weeks ago")] = None,
                        until: Annotated[AwareDatetime | None, Query(
                            description="Reports that occurred before; default: the start of tomorrow")] = None,
                        ) -> Situation:
    """Reports by level and open alerts by level per city, county, week (Monday, Asia/Shanghai) and industry. A
    body sees its own region (403 for another), the admin all (Jiangsu by default)."""
    return await service.situation(session, caller, since=since, until=until, region_code=region_code,
                                   now=utcnow())


@router.get("/regions", response_model=RegionLists, tags=["situation"])
async def get_regions(response: Response) -> RegionLists:
    """Jiangsu's cities and their counties, and the provinces' names (GB/T 2260), for pickers. No token needed."""
    response.headers["Cache-Control"] = "public, max-age=3600"
    return RegionLists.model_validate(regions.picker_data())


@router.get("/watchlist", response_model=WatchlistPage, tags=["situation"],
            responses=error_responses(401, 403, 422, 503))
async def get_watchlist(
    caller: CallerDep, session: SessionDep, region_code: RegionParam = None,
    days: Annotated[int, Query(ge=1, le=service.WATCHLIST_MAX_DAYS)] = 90,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=service.MAX_CURSOR_LENGTH), AfterValidator(_watch_cursor)] = None,
) -> WatchlistPage:
    """Enterprises with blue (关注 / watch) reports in the last `days` days, the most recent first: a body sees its
    own region (a county federation its county), the admin all or the region asked."""
    return await service.watchlist(session, caller, region_code=region_code, days=days, limit=limit, cursor=cursor,
                                   now=utcnow())


# --- one-click receipt links (no sign-in: the signed token is the credential) ----------------------------------------

receipt_router = APIRouter(prefix="/r", include_in_schema=False)

# The token is in the address: no referrer carries it away, no cache keeps the page, no frame hides the button.
RECEIPT_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
                   "Content-Security-Policy": "frame-ancestors 'none'", "X-Robots-Tag": "noindex"}


@receipt_router.get("/{token}", response_class=HTMLResponse)
async def receipt_form(token: str, session: SessionDep, context: Context) -> HTMLResponse:
    """The receipt page: which alert, for which body, and a field for the person's name (nothing is recorded)."""
    return _receipt_page(await service.receipt(session, token, context.policy, utcnow()))


@receipt_router.post("/{token}")
async def confirm_receipt(token: str, request: Request, session: SessionDep, context: Context,
                          after: BackgroundTasks) -> Response:
    """Record the receipt of the link's body: a form post answers with the page, a JSON post with `ReceiptView`."""
    wants_json = request.headers.get("content-type", "").split(";")[0].strip() == "application/json"
    raw = await request.body()
    try:
        if wants_json:
            form = ReceiptForm.model_validate_json(raw)
        else:
            fields = parse_qs(raw.decode("utf-8", errors="replace"), max_num_fields=10)
            form = ReceiptForm.model_validate({"person": (fields.get("person") or [""])[0]})
    except ValidationError as error:
        if wants_json:
            raise RequestValidationError(error.errors(include_url=False)) from None
        view = await service.receipt(session, token, context.policy, utcnow())
        return _receipt_page(view, status_code=422 if view.status.value == "ready" else None)
    view = await service.confirm_receipt(session, token, form, context.policy, utcnow())
    after.add_task(context.relay.wake)  # after the commit: an acknowledgement's event goes out at once
    if wants_json:
        return JSONResponse(view.model_dump(mode="json"), status_code=RECEIPT_STATUS_CODES[view.status],
                            headers=RECEIPT_HEADERS)
    return _receipt_page(view)


def _receipt_page(view: ReceiptView, *, status_code: int | None = None) -> HTMLResponse:
    return HTMLResponse(receipt_page.render(view, missing_person=status_code == 422),
                        status_code=status_code or RECEIPT_STATUS_CODES[view.status], headers=RECEIPT_HEADERS)


# --- case ownership (包案) -------------------------------------------------------------------------------------------


@router.post("/alerts/{alert_id}/owner", response_model=AlertDetail, tags=["alerts"],
             responses=error_responses(401, 403, 404, 409, 422, 503))
async def name_owner(alert_id: str, payload: OwnerAssign, caller: CallerDep, session: SessionDep, context: Context,
                     after: BackgroundTasks) -> AlertDetail:
    """Name the leader who takes the case in hand (包案领导) until it is settled; naming again replaces them (both
    namings stay in the timeline). Only a body that was notified may do it, and not once the alert is resolved."""
    alert = await service.name_owner(session, alert_id, caller, payload, context.policy, utcnow())
    after.add_task(context.relay.wake)
    return alert


@router.post("/alerts/{alert_id}/visits", status_code=201, response_model=AlertDetail, tags=["alerts"],
             responses=error_responses(401, 403, 404, 409, 422, 503))
async def record_visit(alert_id: str, payload: VisitRecord, caller: CallerDep, session: SessionDep,
                       context: Context, after: BackgroundTasks) -> AlertDetail:
    """Record a visit made on the case (带案下访): when (not in the future), who, and what came of it. Only a body
    that was notified may do it; once the alert is resolved, only a visit made before."""
    alert = await service.record_visit(session, alert_id, caller, payload, context.policy, utcnow())
    after.add_task(context.relay.wake)
    return alert


# --- screening coverage (常态化排查) --------------------------------------------------------------------------------


@router.get("/screening/coverage", response_model=CoveragePage, tags=["screening"],
            responses=error_responses(401, 403, 422, 503))
async def screening_coverage(
    caller: CallerDep, session: SessionDep,
    region_code: Annotated[str | None, Query(pattern=r"^\d{6}$", description="A province, city or county")] = None,
    round_id: Annotated[str | None, Query(max_length=36)] = None,
    limit: Annotated[int, Query(ge=1, le=100, description="Rounds, latest due date first")] = 20,
) -> CoveragePage:
    """Who answered each screening round and who has not, per county: a county federation sees its county, a city
    federation its counties, the admin all."""
    return await service.screening_coverage(session, caller, region_code=region_code, round_id=round_id,
                                            limit=limit, now=utcnow())
