"""The report as it travels between services: the structural schema every service reads.

Intake validates submissions more strictly (check characters, region codes, time window) and adds the personal
`contact` block, which never leaves intake. Everything here is safe to publish.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator


class StrictModel(BaseModel):
    """Base for contract models: unknown fields are an error, values are not silently coerced from strings."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ReportKind(StrEnum):
    dispute = "dispute"
    arrears = "arrears"
    stability = "stability"


class Ownership(StrEnum):
    state = "state"
    private = "private"
    foreign = "foreign"
    collective = "collective"
    other = "other"


class CollectiveAction(StrEnum):
    gathering = "gathering"
    work_stoppage = "work_stoppage"
    road_blocking = "road_blocking"
    occupation = "occupation"


class Petition(StrEnum):
    none = "none"
    local = "local"
    repeated = "repeated"
    skip_level = "skip_level"


class OnlineExposure(StrEnum):
    none = "none"
    posted = "posted"
    spreading = "spreading"
    trending = "trending"
    media = "media"


class DisputeType(StrEnum):
    wages = "wages"
    social_insurance = "social_insurance"
    termination = "termination"
    overtime = "overtime"
    work_injury = "work_injury"
    collective_contract = "collective_contract"
    other = "other"


class DisputeStage(StrEnum):
    negotiation = "negotiation"
    mediation = "mediation"
    mediation_failed = "mediation_failed"
    arbitration = "arbitration"
    litigation = "litigation"


class StabilityEventType(StrEnum):
    closure = "closure"
    bankruptcy = "bankruptcy"
    relocation = "relocation"
    mass_layoff = "mass_layoff"
    restructuring = "restructuring"
    social_insurance_arrears = "social_insurance_arrears"
    platform_rule_change = "platform_rule_change"


IndustrySection = Literal[
    "A", "B", "C", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M", "N", "O", "P", "Q", "R", "S", "T"
]
RegionCode = Annotated[str, Field(pattern=r"^[0-9]{6}$", description="County-level code, GB/T 2260")]
CreditCode = Annotated[
    str, Field(pattern=r"^[0-9A-HJ-NPQRTUWXY]{18}$", description="Unified social credit code, GB 32100-2015")
]


class Enterprise(StrictModel):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    credit_code: CreditCode
    industry: IndustrySection
    ownership: Ownership


class ArrearsDetails(StrictModel):
    amount_owed_cny: Annotated[float, Field(ge=0, allow_inf_nan=False, description="Yuan")]
    months_overdue: Annotated[int, Field(ge=0, le=120)]
    employer_absconded: bool


class DisputeDetails(StrictModel):
    dispute_type: DisputeType
    stage: DisputeStage


class StabilityDetails(StrictModel):
    event_type: StabilityEventType
    layoff_without_consultation: bool


KIND_BLOCKS: dict[ReportKind, str] = {
    ReportKind.arrears: "arrears",
    ReportKind.dispute: "dispute",
    ReportKind.stability: "stability",
}


class Report(StrictModel):
    """A report of a labour dispute, wage arrears or a workforce-stability risk, without personal data."""

    kind: ReportKind
    occurred_at: AwareDatetime
    region_code: RegionCode
    enterprise: Enterprise
    workers_involved: Annotated[int, Field(ge=1, le=1_000_000)]
    migrant_workers_involved: Annotated[int, Field(ge=0, le=1_000_000)] = 0
    collective_action: frozenset[CollectiveAction] = frozenset()
    petition: Petition = Petition.none
    extreme_threat: bool = False
    online_exposure: OnlineExposure = OnlineExposure.none
    new_employment_form: bool = False
    summary: Annotated[str, Field(min_length=1, max_length=4000)]
    arrears: ArrearsDetails | None = None
    dispute: DisputeDetails | None = None
    stability: StabilityDetails | None = None

    @model_validator(mode="after")
    def _kind_block_matches(self) -> Report:
        expected = KIND_BLOCKS[self.kind]
        for block in KIND_BLOCKS.values():
            present = getattr(self, block) is not None
            if block == expected and not present:
                raise ValueError(f"kind '{self.kind}' requires the '{block}' block")
            if block != expected and present:
                raise ValueError(f"the '{block}' block is only allowed with kind '{block}'")
        if self.migrant_workers_involved > self.workers_involved:
            raise ValueError("migrant_workers_involved cannot exceed workers_involved")
        return self

    @property
    def credit_code(self) -> str:
        return self.enterprise.credit_code

