"""HTTP API of the risk service: assessments, the rubric in force, and trends (态势监测). Thin: authenticate,
call the service in the request's one session (`shared.deps.SessionDep`), answer."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse

from services.risk import service
from services.risk.context import RiskContext
from services.risk.schemas import AssessmentView, TrendGroup, TrendPeriod, Trends
from services.risk.scoring import Rubric
from shared.auth import require_admin
from shared.deps import SessionDep, service_context
from shared.openapi import error_responses

router = APIRouter(prefix="/v1")

Context = Annotated[RiskContext, Depends(service_context)]
Admin = Depends(require_admin)  # risk has no principals: the admin token only


@router.get("/assessments/{report_id}", response_model=AssessmentView, dependencies=[Admin], tags=["assessments"],
            responses=error_responses(401, 403, 404, 503))
async def get_assessment(report_id: str, session: SessionDep) -> AssessmentView:
    """The score of one report, its level and why (every criterion and floor that gave points)."""
    return await service.get_assessment(session, report_id)


@router.get("/rubric", response_model=Rubric, tags=["rubric"])
async def get_rubric(context: Context) -> JSONResponse:
    """The rubric in force: criteria, floors, cap, levels and acknowledgement deadlines. Public by design."""
    # The rubric's own JSON dump, as loaded (not validated again as a response).
    return JSONResponse(context.rubric.model_dump(mode="json"))


@router.get("/trends", response_model=Trends, dependencies=[Admin], tags=["trends"],
            responses=error_responses(401, 403, 422, 503))
async def get_trends(
    context: Context,
    session: SessionDep,
    group_by: TrendGroup = "region",
    period: TrendPeriod = "day",
    since: Annotated[date | None, Query(description="First day (Asia/Shanghai); default 30 days ago")] = None,
) -> Trends:
    """Counts of assessed reports per level, by county (`region`), city, industry or kind, per day or week of
    `occurred_at` in Asia/Shanghai: how labour relations develop (劳动关系发展态势监测)."""
    since = since or (datetime.now().date() - timedelta(days=30))
    return await service.trends(session, zone=context.rubric.timezone, group_by=group_by, period=period,
                                since=since)
