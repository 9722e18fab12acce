"""API models of risk (responses): an assessment as shown, and the trends (态势监测)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, Field

from shared.events import Reason, RiskLevel

TrendGroup = Literal["region", "city", "industry", "kind"]
TrendPeriod = Literal["day", "week"]


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
