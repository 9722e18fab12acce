"""Routes of the form's sign-in (`/v1/session`), the signed-in unit (`/v1/me`) and the region lists the form's
pickers use (`/v1/regions`). Thin: check, call the service, set or clear the cookie.

The cookie (`SESSION_COOKIE`): HttpOnly, SameSite=Strict, Path=/, Max-Age of `INTAKE_SESSION_HOURS`, Secure when
the request came over https or `INTAKE_SESSION_COOKIE_SECURE` says so. Signing in and out are state changes too:
both need `X-Requested-With` (so a cross-site page can neither sign a unit out nor sign a browser in as another
unit), like every cookie-authenticated POST (see `shared.auth.require_same_site_header`).
"""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request, Response

from services.intake.api import CallerDep, Context
from services.intake.models import Unit
from services.intake.signin import service
from services.intake.signin.schemas import RegionLists, SessionCreate, SessionCreated, UnitMe
from services.intake.signin.service import SESSION_COOKIE
from shared import regions
from shared.auth import require_same_site_header
from shared.deps import SessionDep
from shared.events import utcnow
from shared.http import Forbidden
from shared.openapi import error_responses

router = APIRouter(prefix="/v1", tags=["session"])


def _me(unit: Unit) -> dict[str, object]:
    return {"unit_id": unit.id, "name": unit.name, "region_code": unit.region_code,
            "region_label": regions.label(unit.region_code, with_city=True),
            "city_code": regions.city_of(unit.region_code)}


@router.post("/session", response_model=SessionCreated, responses=error_responses(401, 403, 413, 422, 503))
async def sign_in(body: SessionCreate, request: Request, response: Response, context: Context,
                  session: SessionDep) -> SessionCreated:
    """Sign a unit in on the form with its API key: sets the session cookie (the key itself is not kept). Needs
    `X-Requested-With`. Scripts keep using `Authorization: Bearer <key>` and never need this."""
    require_same_site_header(request)
    settings = context.settings
    token, unit, expires_at = await service.sign_in(
        session, api_key=body.api_key, now=utcnow(), lifetime=timedelta(hours=settings.session_hours))
    secure = settings.session_cookie_secure
    response.set_cookie(
        SESSION_COOKIE, token, max_age=int(settings.session_hours * 3600), path="/", httponly=True,
        samesite="strict", secure=request.url.scheme == "https" if secure is None else secure,
    )
    return SessionCreated(**_me(unit), expires_at=expires_at)


@router.delete("/session", status_code=204, responses=error_responses(403, 503))
async def sign_out(request: Request, session: SessionDep) -> Response:
    """Sign out: the session stops working at once and the cookie is cleared. Needs `X-Requested-With`."""
    require_same_site_header(request)
    token = request.cookies.get(SESSION_COOKIE)
    if token:
        await service.sign_out(session, token=token)
    response = Response(status_code=204)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/me", response_model=UnitMe, responses=error_responses(401, 403, 429, 503))
async def me(caller: CallerDep, session: SessionDep) -> UnitMe:
    """The calling unit (cookie or bearer key): name and region, to prefill the form."""
    if caller.unit_id is None:
        raise Forbidden("管理员不属于任何上报单位 / The administrator is not a reporting unit")
    return UnitMe(**_me(await service.active_unit(session, caller.unit_id)))


@router.get("/regions", tags=["regions"], response_model=RegionLists)
async def region_lists() -> Response:
    """Public: Jiangsu's cities with their counties and the names of every province (GB/T 2260), for the form's
    city → county pickers. Served as prepared JSON (the model documents it)."""
    return Response(regions.picker_json(), media_type="application/json",
                    headers={"Cache-Control": "public, max-age=3600"})

