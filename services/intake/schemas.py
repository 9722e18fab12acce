"""API models of intake (requests and responses)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

from shared.regions import region_code_problem


class UnitCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200)]
    region_code: str

    @field_validator("region_code")
    @classmethod
    def _county_level(cls, value: str) -> str:
        if region_code_problem(value) is not None:
            raise PydanticCustomError(
                "region_code", "应为县级行政区划代码(6 位)/ must be a six-digit county-level region code"
            )
        return value


class UnitCreated(BaseModel):
    unit_id: str
    name: str
    region_code: str
    api_key: str = Field(description="Shown once; store it safely. Only its hash is kept.")


class UnitKey(BaseModel):
    unit_id: str
    api_key: str = Field(description="Shown once: the unit's new key; the previous one is refused from now on")


class ReportAcceptedResponse(BaseModel):
    report_id: str
    status: Literal["accepted"] = "accepted"


class ReportView(BaseModel):
    report_id: str
    unit_id: str
    status: Literal["accepted", "assessed", "alerted"]
    accepted_at: datetime
    report: dict[str, Any]
    contact: dict[str, Any] | None = Field(default=None, description="Personal data: only to its unit and admin")
    assessment: dict[str, Any] | None
    alert_ids: list[str]


class ReportSummary(BaseModel):
    report_id: str
    status: Literal["accepted", "assessed", "alerted"]
    kind: str
    region_code: str
    enterprise_name: str
    accepted_at: datetime
    occurred_at: str
    level: str | None
    score: int | None
    alert_ids: list[str]


class ReportPage(BaseModel):
    items: list[ReportSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` to get the next page; null on the last page")


class ReportBatch(BaseModel):
    """The body of `POST /v1/reports/batch`: up to 500 reports (4 MiB at most). Each item is a report as
    `POST /v1/reports` takes it, plus an optional `idempotency_key` (1–128 characters; the same key as the
    `Idempotency-Key` header of a single submission). Items are checked one by one: a bad item is refused in the
    answer, the others are still accepted."""

    model_config = ConfigDict(extra="forbid")

    reports: Annotated[list[Any], Field(min_length=1, max_length=500,
                                        description="Report bodies, each with an optional `idempotency_key`")]


class BatchItemError(BaseModel):
    code: str
    message: str
    details: list[dict[str, Any]]


class BatchItemResult(BaseModel):
    index: int = Field(description="Position of the item in `reports` (from 0)")
    status: Literal[202, 409, 422] = Field(description="202 accepted (durable), 409 idempotency conflict, 422 "
                                                       "invalid")
    report_id: str | None = Field(default=None, description="With 202: the report's id (the first one on a replay)")
    replayed: bool | None = Field(default=None, description="With 202: true when an earlier answer was replayed")
    error: BatchItemError | None = Field(default=None, description="With 409/422: the error, as a single "
                                                                   "submission would get it")


class BatchResults(BaseModel):
    results: list[BatchItemResult] = Field(description="One result per item, in input order")
