"""HTTP API of the alerts service: the bodies directory, alerts as each body sees them, acknowledge and resolve.

Thin routes: each reads its inputs, calls one function of `service.py` in the request's one session
(`SessionDep`, committed before the response) and returns its typed answer.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Response

from services.alerts import repository, service
from services.alerts.context import AlertsContext
from services.alerts.schemas import (
    AlertDetail,
    AlertPage,
    BodyCreate,
    BodyCreated,
    BodyToken,
    BodyUpdate,
    BodyView,
    Resolution,
)
from shared.auth import Caller, admin_dependency, caller_dependency
from shared.deps import SessionDep, service_context
from shared.events import AlertState, RiskLevel, utcnow
from shared.openapi import error_responses

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


@router.get("/alerts", response_model=AlertPage, tags=["alerts"], responses=error_responses(401, 422, 503))
async def list_alerts(
    caller: CallerDep, session: SessionDep,
    state: AlertState | None = None, level: RiskLevel | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^\d+$", max_length=18,
                                        description="From the previous page's next_cursor")] = None,
) -> AlertPage:
    """Alerts, most severe first, then oldest first. A body sees the alerts it was notified of; admin sees all."""
    return await service.list_alerts(session, caller, state=state, level=level, limit=limit,
                                     offset=int(cursor or 0))


@router.get("/alerts/{alert_id}", response_model=AlertDetail, tags=["alerts"],
            responses=error_responses(401, 404, 422, 503))
async def get_alert(alert_id: str, caller: CallerDep, session: SessionDep) -> AlertDetail:
    """One alert with who was notified and why, its deliveries and escalations."""
    return await service.get_alert(session, alert_id, caller)


@router.post("/alerts/{alert_id}/ack", response_model=AlertDetail, tags=["alerts"],
             responses=error_responses(401, 403, 404, 409, 422, 503))
async def acknowledge_alert(alert_id: str, caller: CallerDep, session: SessionDep, context: Context,
                            after: BackgroundTasks) -> AlertDetail:
    """Say "we have it": stops escalation. Only a body that was notified may do it."""
    alert = await service.acknowledge(session, alert_id, caller, utcnow())
    after.add_task(context.relay.wake)  # after the commit: the relay then finds the outbox row at once
    return alert


@router.post("/alerts/{alert_id}/resolve", response_model=AlertDetail, tags=["alerts"],
             responses=error_responses(401, 403, 404, 409, 422, 503))
async def resolve_alert(alert_id: str, payload: Resolution, caller: CallerDep, session: SessionDep, context: Context,
                        after: BackgroundTasks) -> AlertDetail:
    """Close the alert with its outcome and a note."""
    alert = await service.resolve(session, alert_id, caller, outcome=payload.outcome, note=payload.note,
                                  now=utcnow())
    after.add_task(context.relay.wake)
    return alert
