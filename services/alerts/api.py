"""HTTP API of the alerts service: the bodies directory, alerts as each body sees them, acknowledge and resolve."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError
from sqlalchemy import case, select

from services.alerts import service
from services.alerts.channels import ChannelConfig
from services.alerts.context import AlertsContext
from services.alerts.models import Alert, Body, Notification
from services.alerts.routing import BodyKind, BodyLevel
from shared.auth import bearer_token, hash_token, is_admin_token, new_token
from shared.db import transaction
from shared.events import AlertState, RiskLevel, utcnow
from shared.http import Forbidden, NotFound, Unauthorized

router = APIRouter(prefix="/v1")


def get_context(request: Request) -> AlertsContext:
    context: AlertsContext = request.app.state.context
    return context


Context = Annotated[AlertsContext, Depends(get_context)]


async def get_caller(context: Context, authorization: Annotated[str | None, Header()] = None) -> service.Caller:
    token = bearer_token(authorization)
    if token is None:
        raise Unauthorized()
    if is_admin_token(token, context.settings.admin_token):
        return service.ADMIN
    async with transaction(context.sessions) as session:
        body_id = await session.scalar(select(Body.id).where(Body.token_hash == hash_token(token),
                                                             Body.active.is_(True)))
    if body_id is None:
        raise Unauthorized()
    return service.Caller(body_id=body_id)


CallerDep = Annotated[service.Caller, Depends(get_caller)]


def require_admin(caller: CallerDep) -> None:
    if not caller.is_admin:
        raise Forbidden()


# --- bodies --------------------------------------------------------------------------------------------------------


def _region_code(value: str, level: str | None) -> str:
    if len(value) != 6 or not value.isdigit():
        raise PydanticCustomError("region_code", "应为 6 位行政区划代码 / must be a six-digit region code")
    significant = {"county": 6, "city": 4, "province": 2}.get(level or "", 6)
    if value[significant:].strip("0"):
        raise PydanticCustomError(
            "region_code", "与机构层级不符(市级如 320100,省级如 320000)/ does not match the level "
                           "(a city is like 320100, a province like 320000)")
    if significant == 6 and value[4:] == "00":
        raise PydanticCustomError("region_code", "县级机构应使用县级代码 / a county body needs a county code")
    return value


class BodyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    kind: BodyKind
    level: BodyLevel
    region_code: str
    channels: Annotated[list[ChannelConfig], Field(min_length=1, max_length=10)]

    @field_validator("region_code")
    @classmethod
    def _matches_level(cls, value: str, info: Any) -> str:
        return _region_code(value, info.data.get("level"))


class BodyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    channels: Annotated[list[ChannelConfig], Field(min_length=1, max_length=10)] | None = None
    active: bool | None = None


class BodyCreated(BaseModel):
    body_id: str
    token: str = Field(description="Shown once: the body signs in to the inbox and the API with it")


class BodyView(BaseModel):
    body_id: str
    name: str
    kind: str
    level: str
    region_code: str
    channels: list[dict[str, Any]] = Field(description="Channel types and targets; secrets are never shown")
    active: bool
    created_at: datetime


def _body_view(body: Body) -> BodyView:
    return BodyView(
        body_id=body.id, name=body.name, kind=body.kind, level=body.level, region_code=body.region_code,
        channels=[{k: v for k, v in channel.items() if k != "secret"} for channel in body.channels],
        active=body.active, created_at=body.created_at,
    )


@router.post("/bodies", status_code=201, response_model=BodyCreated, dependencies=[Depends(require_admin)],
             tags=["bodies"])
async def create_body(payload: BodyCreate, context: Context) -> BodyCreated:
    """Register a union federation, mediation centre or other body, with its delivery channels."""
    token = new_token("body")
    now = utcnow()
    body = Body(id=str(uuid.uuid4()), name=payload.name, kind=payload.kind.value, level=payload.level.value,
                region_code=payload.region_code, channels=[c.model_dump() for c in payload.channels],
                token_hash=hash_token(token), active=True, created_at=now, updated_at=now)
    async with transaction(context.sessions) as session:
        session.add(body)
    return BodyCreated(body_id=body.id, token=token)


@router.get("/bodies", response_model=list[BodyView], dependencies=[Depends(require_admin)], tags=["bodies"])
async def list_bodies(context: Context, region_code: Annotated[str | None, Query(pattern=r"^\d{2,6}$")] = None,
                      include_inactive: bool = False) -> list[BodyView]:
    statement = select(Body).order_by(Body.region_code, Body.kind, Body.level, Body.name)
    if region_code:
        statement = statement.where(Body.region_code.startswith(region_code))
    if not include_inactive:
        statement = statement.where(Body.active.is_(True))
    async with transaction(context.sessions) as session:
        return [_body_view(body) for body in (await session.scalars(statement)).all()]


@router.get("/bodies/{body_id}", response_model=BodyView, tags=["bodies"])
async def get_body(body_id: str, caller: CallerDep, context: Context) -> BodyView:
    """A body (admin, or the body itself)."""
    if not caller.is_admin and caller.body_id != body_id:
        raise NotFound("没有该机构 / No such body")
    async with transaction(context.sessions) as session:
        body = await session.get(Body, body_id)
    if body is None:
        raise NotFound("没有该机构 / No such body")
    return _body_view(body)


@router.patch("/bodies/{body_id}", response_model=BodyView, dependencies=[Depends(require_admin)], tags=["bodies"])
async def update_body(body_id: str, payload: BodyUpdate, context: Context) -> BodyView:
    """Rename, change channels, or (de)activate a body. A deactivated body is not routed to and cannot sign in."""
    async with transaction(context.sessions) as session:
        body = await session.get(Body, body_id, with_for_update=True)
        if body is None:
            raise NotFound("没有该机构 / No such body")
        if payload.name is not None:
            body.name = payload.name
        if payload.channels is not None:
            body.channels = [c.model_dump() for c in payload.channels]
        if payload.active is not None:
            body.active = payload.active
        body.updated_at = utcnow()
        return _body_view(body)


@router.delete("/bodies/{body_id}", status_code=204, dependencies=[Depends(require_admin)], tags=["bodies"])
async def deactivate_body(body_id: str, context: Context) -> Response:
    """Deactivate a body (its history stays: alerts it was told about still name it)."""
    async with transaction(context.sessions) as session:
        body = await session.get(Body, body_id, with_for_update=True)
        if body is None:
            raise NotFound("没有该机构 / No such body")
        body.active = False
        body.updated_at = utcnow()
    return Response(status_code=204)


# --- alerts --------------------------------------------------------------------------------------------------------


class AlertPage(BaseModel):
    items: list[dict[str, Any]]
    next_cursor: str | None


_SEVERITY = case({level.value: level.rank for level in RiskLevel}, value=Alert.level)


@router.get("/alerts", response_model=AlertPage, tags=["alerts"])
async def list_alerts(
    caller: CallerDep, context: Context,
    state: AlertState | None = None, level: RiskLevel | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(pattern=r"^\d+$", description="From the previous page's next_cursor")] = None,
) -> AlertPage:
    """Alerts, most severe first, then oldest first. A body sees the alerts it was notified of; admin sees all."""
    statement = select(Alert)
    if not caller.is_admin:
        statement = statement.where(
            Alert.id.in_(select(Notification.alert_id).where(Notification.body_id == caller.body_id))
        )
    if state is not None:
        statement = statement.where(Alert.state == state.value)
    if level is not None:
        statement = statement.where(Alert.level == level.value)
    offset = int(cursor or 0)
    statement = statement.order_by(_SEVERITY.desc(), Alert.opened_at, Alert.id).offset(offset).limit(limit + 1)
    async with transaction(context.sessions) as session:
        alerts = (await session.scalars(statement)).all()
        items = [await service.alert_view(session, alert) for alert in alerts[:limit]]
    return AlertPage(items=items, next_cursor=str(offset + limit) if len(alerts) > limit else None)


async def _visible_alert(context: AlertsContext, caller: service.Caller, alert_id: str) -> dict[str, Any]:
    async with transaction(context.sessions) as session:
        alert = await session.get(Alert, alert_id)
        if alert is None or not (caller.is_admin or await service.was_notified(session, alert_id, caller.body_id)):
            raise NotFound("没有该预警 / No such alert")
        return await service.alert_view(session, alert, deliveries=True)


@router.get("/alerts/{alert_id}", tags=["alerts"])
async def get_alert(alert_id: str, caller: CallerDep, context: Context) -> dict[str, Any]:
    """One alert with who was notified and why, its deliveries and escalations."""
    return await _visible_alert(context, caller, alert_id)


@router.post("/alerts/{alert_id}/ack", tags=["alerts"])
async def acknowledge_alert(alert_id: str, caller: CallerDep, context: Context) -> dict[str, Any]:
    """Say "we have it": stops escalation. Only a body that was notified may do it."""
    async with transaction(context.sessions) as session:
        await service.acknowledge(session, alert_id, caller, utcnow())
    context.relay.wake()
    return await _visible_alert(context, caller, alert_id)


class Resolution(BaseModel):
    model_config = ConfigDict(extra="forbid")

    outcome: Literal["mediated", "arbitrated", "paid", "litigated", "withdrawn", "other"]
    note: Annotated[str, Field(min_length=1, max_length=2000)]


@router.post("/alerts/{alert_id}/resolve", tags=["alerts"])
async def resolve_alert(alert_id: str, payload: Resolution, caller: CallerDep, context: Context) -> dict[str, Any]:
    """Close the alert with its outcome and a note."""
    async with transaction(context.sessions) as session:
        await service.resolve(session, alert_id, caller, outcome=payload.outcome, note=payload.note, now=utcnow())
    context.relay.wake()
    return await _visible_alert(context, caller, alert_id)
