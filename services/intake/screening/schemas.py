"""API models of screening rounds (requests and responses)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from services.intake.screening.regions import region_level
from shared.events import ScreeningStatus

RoundState = Literal["upcoming", "open", "closed"]


class RoundCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    region_code: str = Field(description="A province (320000), city (320100) or county (320102) code")
    opens_at: AwareDatetime
    due_at: AwareDatetime = Field(description="After opens_at and in the future; answers close at this time")

    @field_validator("region_code")
    @classmethod
    def _region(cls, value: str) -> str:
        if region_level(value) is None:
            raise PydanticCustomError(
                "region_code",
                "应为省级、地市级或县级行政区划代码(6 位) / must be a six-digit province, city or county code",
            )
        return value

    @field_validator("due_at")
    @classmethod
    def _after_opening(cls, value: datetime, info: ValidationInfo) -> datetime:
        opens_at = info.data.get("opens_at")
        if opens_at is not None and value <= opens_at:
            raise PydanticCustomError("due_at", "截止时间应晚于开始时间 / must be after opens_at")
        return value


class RoundCreated(BaseModel):
    round_id: str


class ReturnSubmit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: ScreeningStatus = Field(description="no_risk: 本期无风险隐患 / nothing found; risks_reported: see reports")
    report_ids: Annotated[list[uuid.UUID], Field(max_length=100)] = Field(
        default_factory=list, validate_default=True,
        description="The unit's own reports on the risks found (none for no_risk)",
    )
    note: Annotated[str | None, Field(max_length=2000)] = None

    @field_validator("report_ids")
    @classmethod
    def _reports_match_status(cls, value: list[uuid.UUID], info: ValidationInfo) -> list[uuid.UUID]:
        status = info.data.get("status")
        if status == ScreeningStatus.risks_reported and not value:
            raise PydanticCustomError(
                "screening_reports_required", "报告发现风险时须关联至少一份本单位的报告 / "
                "risks_reported needs at least one of the unit's reports",
            )
        if status == ScreeningStatus.no_risk and value:
            raise PydanticCustomError(
                "screening_reports_forbidden",
                "无风险隐患的回复不能关联报告 / a no_risk answer links no reports",
            )
        return list(dict.fromkeys(value))  # the same report twice is still one report

    @property
    def report_id_strings(self) -> list[str]:
        return [str(report_id) for report_id in self.report_ids]


class ReturnView(BaseModel):
    round_id: str
    unit_id: str
    status: ScreeningStatus
    report_ids: list[str]
    note: str | None
    revision: int = Field(description="1 for the first answer, +1 each time it was replaced")
    first_submitted_at: datetime
    submitted_at: datetime


class MissingUnit(BaseModel):
    unit_id: str
    name: str
    region_code: str


class RegionCoverage(BaseModel):
    region_code: str = Field(description="A county code")
    expected: int
    answered: int
    no_risk: int
    risks_reported: int


class RoundBase(BaseModel):
    round_id: str
    name: str
    region_code: str
    region_level: Literal["province", "city", "county"]
    opens_at: datetime
    due_at: datetime
    state: RoundState


class RoundView(RoundBase):
    """The whole round, for the administrator."""

    expected: int
    answered: int
    no_risk: int
    risks_reported: int
    missing: list[MissingUnit]
    by_region: list[RegionCoverage] = Field(description="Coverage per county, by county code")
    due_notified_at: datetime | None = Field(description="When the due notice went out; null before")


class UnitRoundView(RoundBase):
    """The round as one expected unit sees it: its own answer only."""

    my_return: ReturnView | None


class RoundItem(RoundBase):
    """A round in the administrator's list."""

    expected: int
    answered: int


class UnitRoundItem(RoundBase):
    """A round in a unit's list, with the status of its answer (null when it has not answered)."""

    my_status: ScreeningStatus | None


class RoundList(BaseModel):
    items: list[RoundItem] | list[UnitRoundItem] = Field(description="Open rounds first, then upcoming, then closed")
