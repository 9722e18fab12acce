"""HTTP API of the risk service: assessments, the rubric in force, and trends (态势监测)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request

from services.risk import service
from services.risk.context import RiskContext
from services.risk.schemas import AssessmentView, TrendGroup, TrendPeriod, Trends
from shared.auth import bearer_token, is_admin_token
from shared.db import transaction
from shared.http import Forbidden, Unauthorized

router = APIRouter(prefix="/v1")


def get_context(request: Request) -> RiskContext:
    context: RiskContext = request.app.state.context
    return context


Context = Annotated[RiskContext, Depends(get_context)]


async def require_admin(context: Context, authorization: Annotated[str | None, Header()] = None) -> None:
    token = bearer_token(authorization)
    if token is None:
        raise Unauthorized()
    if not is_admin_token(token, context.settings.admin_token):
        raise Forbidden()


Admin = Depends(require_admin)


@router.get("/assessments/{report_id}", response_model=AssessmentView, dependencies=[Admin], tags=["assessments"])
async def get_assessment(report_id: str, context: Context) -> AssessmentView:
    """The score of one report, its level and why (every criterion and floor that gave points)."""
    async with transaction(context.sessions) as session:
        return await service.get_assessment(session, report_id)


@router.get("/rubric", tags=["rubric"])
async def get_rubric(context: Context) -> dict[str, Any]:
    """The rubric in force: criteria, floors, cap, levels and acknowledgement deadlines. Public by design."""
    return context.rubric.model_dump(mode="json")


@router.get("/trends", response_model=Trends, dependencies=[Admin], tags=["trends"])
async def get_trends(
    context: Context,
    group_by: TrendGroup = "region",
    period: TrendPeriod = "day",
    since: Annotated[date | None, Query(description="First day (Asia/Shanghai); default 30 days ago")] = None,
) -> Trends:
    """Counts of assessed reports per level, by county (`region`), city, industry or kind, per day or week of
    `occurred_at` in Asia/Shanghai: how labour relations develop (劳动关系发展态势监测)."""
    since = since or (datetime.now().date() - timedelta(days=30))
    async with transaction(context.sessions) as session:
        return await service.trends(session, zone=context.rubric.timezone, group_by=group_by, period=period,
                                    since=since)
