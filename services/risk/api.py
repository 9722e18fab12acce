"""HTTP API of the risk service: assessments, the rubric in force, and trends (态势监测)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import ColumnElement, func, literal, select
from sqlalchemy.orm import InstrumentedAttribute

from services.risk.context import RiskContext
from services.risk.models import Assessment
from shared.auth import bearer_token, is_admin_token
from shared.db import transaction
from shared.events import Reason, RiskLevel
from shared.http import Forbidden, NotFound, Unauthorized

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


class AssessmentView(BaseModel):
    report_id: str
    score: int
    level: RiskLevel
    rubric_version: str
    reasons: list[Reason]
    assessed_at: datetime
    kind: str
    credit_code: str
    region_code: str
    occurred_at: datetime


@router.get("/assessments/{report_id}", response_model=AssessmentView, dependencies=[Admin], tags=["assessments"])
async def get_assessment(report_id: str, context: Context) -> AssessmentView:
    """The score of one report, its level and why (every criterion and floor that gave points)."""
    async with transaction(context.sessions) as session:
        row = await session.get(Assessment, report_id)
    if row is None:
        raise NotFound("尚未评估该报告 / No assessment for this report (yet)")
    return AssessmentView(
        report_id=row.report_id, score=row.score, level=RiskLevel(row.level), rubric_version=row.rubric_version,
        reasons=[Reason.model_validate(reason) for reason in row.reasons], assessed_at=row.assessed_at,
        kind=row.kind, credit_code=row.credit_code, region_code=row.region_code, occurred_at=row.occurred_at,
    )


@router.get("/rubric", tags=["rubric"])
async def get_rubric(context: Context) -> dict[str, Any]:
    """The rubric in force: criteria, floors, cap, levels and acknowledgement deadlines. Public by design."""
    return context.rubric.model_dump(mode="json")


class TrendBucket(BaseModel):
    period_start: date
    group: str
    counts: dict[str, int] = Field(description="Reports per level (red, orange, yellow, blue, none)")
    total: int


class Trends(BaseModel):
    group_by: str
    period: str
    since: date
    timezone: str
    buckets: list[TrendBucket]


@router.get("/trends", response_model=Trends, dependencies=[Admin], tags=["trends"])
async def get_trends(
    context: Context,
    group_by: Literal["region", "city", "industry", "kind"] = "region",
    period: Literal["day", "week"] = "day",
    since: Annotated[date | None, Query(description="First day (Asia/Shanghai); default 30 days ago")] = None,
) -> Trends:
    """Counts of assessed reports per level, by county (`region`), city, industry or kind, per day or week of
    `occurred_at` in Asia/Shanghai: how labour relations develop (劳动关系发展态势监测)."""
    zone = context.rubric.timezone
    since = since or (datetime.now().date() - timedelta(days=30))
    local = func.timezone(zone, Assessment.occurred_at)
    bucket = func.date_trunc(period, local).label("bucket")
    groups: dict[str, ColumnElement[str] | InstrumentedAttribute[str]] = {
        "region": Assessment.region_code,
        "city": func.substr(Assessment.region_code, 1, 4).concat(literal("00")),
        "industry": Assessment.industry,
        "kind": Assessment.kind,
    }
    group = groups[group_by].label("grp")
    statement = (
        select(bucket, group, Assessment.level, func.count())
        .where(local >= since)
        .group_by(bucket, group, Assessment.level)
        .order_by(bucket, group)
    )
    async with transaction(context.sessions) as session:
        rows = (await session.execute(statement)).all()
    buckets: dict[tuple[date, str], dict[str, int]] = {}
    for started, grp, level, count in rows:
        counts = buckets.setdefault((started.date(), grp), {level.value: 0 for level in RiskLevel})
        counts[level] = count
    return Trends(
        group_by=group_by, period=period, since=since, timezone=zone,
        buckets=[TrendBucket(period_start=key[0], group=key[1], counts=counts, total=sum(counts.values()))
                 for key, counts in buckets.items()],
    )
