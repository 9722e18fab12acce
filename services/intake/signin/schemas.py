"""API models of the form's sign-in: the key presented once, and who the signed-in unit is."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field


class SessionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    api_key: Annotated[str, Field(min_length=1, max_length=200, description="The unit's API key")]


class UnitMe(BaseModel):
    """The signed-in unit: its name and region (code and `中文 / English` label) to prefill the form."""

    unit_id: str
    name: str
    region_code: str
    region_label: str = Field(description='e.g. "南京市 玄武区 / Xuanwu District, Nanjing"')
    city_code: str | None = Field(description="The region's prefecture-level city, when it is a listed one")


class SessionCreated(UnitMe):
    expires_at: datetime = Field(description="When the session cookie stops working")


class RegionName(BaseModel):
    code: str
    name_zh: str
    name_en: str


class CityRegions(RegionName):
    counties: list[RegionName]


class RegionLists(BaseModel):
    """`shared.regions.picker_data()`: Jiangsu's cities with their counties, and the names of every province."""

    province: RegionName
    cities: list[CityRegions]
    provinces: list[RegionName]
    source: str
