"""Who an alert goes to: the routing table (data in `routing.yaml`) and the pure rules that resolve it to bodies.

Rules from TASK7.md "Bodies and routing" and "Alert lifecycle": a (kind, level) pair resolves to the covering body
of that kind at that level, else one level up (county -> city -> province), else nobody; each body is notified once
per alert; escalation goes to the covering union body above the highest union body notified so far.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import yaml
from pydantic import BaseModel, ConfigDict, Field

from shared.events import RiskLevel
from shared.report import DisputeStage, Report, ReportKind

DEFAULT_ROUTING_PATH = Path(__file__).with_name("routing.yaml")


class BodyKind(StrEnum):
    union = "union"
    mediation_centre = "mediation_centre"
    arbitration = "arbitration"
    labour_inspection = "labour_inspection"
    legal_aid = "legal_aid"


class BodyLevel(StrEnum):
    county = "county"
    city = "city"
    province = "province"

    @property
    def rank(self) -> int:
        """0 for county, 1 for city, 2 for province: higher is further up."""
        return _BODY_LEVELS.index(self)

    @property
    def above(self) -> BodyLevel | None:
        """The next level up, or None above province."""
        return _BODY_LEVELS[self.rank + 1] if self.rank + 1 < len(_BODY_LEVELS) else None

    @property
    def significant_digits(self) -> int:
        """How many leading digits of a region code name a region at this level (GB/T 2260)."""
        return _SIGNIFICANT_DIGITS[self]

    def and_above(self) -> list[BodyLevel]:
        """This level and every level above it, lowest first."""
        return list(_BODY_LEVELS[self.rank :])


_BODY_LEVELS: tuple[BodyLevel, ...] = (BodyLevel.county, BodyLevel.city, BodyLevel.province)
_SIGNIFICANT_DIGITS = {BodyLevel.county: 6, BodyLevel.city: 4, BodyLevel.province: 2}


@dataclass(frozen=True)
class BodyRef:
    """What routing needs to know about a body: its id, kind, level and region."""

    body_id: str
    kind: BodyKind
    level: BodyLevel
    region_code: str


def covers(body: BodyRef, report_region_code: str) -> bool:
    """Whether the body's region contains the report's county: county all 6 digits, city the first 4, province 2."""
    digits = body.level.significant_digits
    return len(report_region_code) == 6 and body.region_code[:digits] == report_region_code[:digits]


@dataclass(frozen=True)
class RoutingTarget:
    """One row of the routing table: a body kind at some levels, optionally only for one report kind / stage."""

    kind: BodyKind
    levels: tuple[BodyLevel, ...]
    only_report_kind: ReportKind | None = None
    only_dispute_stage: DisputeStage | None = None

    def applies_to(self, report: Report) -> bool:
        if self.only_report_kind is not None and report.kind != self.only_report_kind:
            return False
        if self.only_dispute_stage is not None:
            return report.dispute is not None and report.dispute.stage == self.only_dispute_stage
        return True


@dataclass(frozen=True)
class RoutingTable:
    """The targets of each alerting risk level; levels that open no alert (blue, none) have none."""

    targets: Mapping[RiskLevel, tuple[RoutingTarget, ...]]

    def for_level(self, level: RiskLevel) -> tuple[RoutingTarget, ...]:
        return self.targets.get(level, ())


class _TargetFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: BodyKind
    levels: Annotated[list[BodyLevel], Field(min_length=1)]
    only_report_kind: ReportKind | None = None
    only_dispute_stage: DisputeStage | None = None


class _RoutingFile(BaseModel):
    """The shape of routing.yaml: exactly the three alerting levels, each with its targets."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    red: list[_TargetFile]
    orange: list[_TargetFile]
    yellow: list[_TargetFile]


def load_routing(path: Path | str | None = None) -> RoutingTable:
    """Read and validate the routing table (default: `routing.yaml` beside this module).

    Raises pydantic.ValidationError for an unknown kind, level or key, so a bad table stops start-up.
    """
    source = Path(path) if path is not None else DEFAULT_ROUTING_PATH
    parsed = _RoutingFile.model_validate(yaml.safe_load(source.read_text(encoding="utf-8")))
    return RoutingTable(
        targets={
            RiskLevel.red: _targets(parsed.red),
            RiskLevel.orange: _targets(parsed.orange),
            RiskLevel.yellow: _targets(parsed.yellow),
        }
    )


def _targets(rows: Iterable[_TargetFile]) -> tuple[RoutingTarget, ...]:
    return tuple(
        RoutingTarget(
            kind=row.kind,
            levels=tuple(row.levels),
            only_report_kind=row.only_report_kind,
            only_dispute_stage=row.only_dispute_stage,
        )
        for row in rows
    )


def covering_body(bodies: Sequence[BodyRef], kind: BodyKind, level: BodyLevel, region_code: str) -> BodyRef | None:
    """The covering body of that kind at exactly that level.

    Several may cover (a misconfiguration, or two offices sharing a region): the lowest `body_id` wins, so the
    choice is the same on every run and every replica.
    """
    candidates = [b for b in bodies if b.kind == kind and b.level == level and covers(b, region_code)]
    return min(candidates, key=lambda b: b.body_id, default=None)


def resolve_pair(bodies: Sequence[BodyRef], kind: BodyKind, level: BodyLevel, region_code: str) -> BodyRef | None:
    """The covering body of that kind at that level, else at the first level above that has one, else None."""
    for candidate_level in level.and_above():
        body = covering_body(bodies, kind, candidate_level, region_code)
        if body is not None:
            return body
    return None


def resolve_targets(table: RoutingTable, level: RiskLevel, report: Report, bodies: Sequence[BodyRef]) -> list[BodyRef]:
    """The bodies an alert of this level on this report goes to, each once, in routing-table order."""
    resolved: list[BodyRef] = []
    for target in table.for_level(level):
        if not target.applies_to(report):
            continue
        for body_level in target.levels:
            body = resolve_pair(bodies, target.kind, body_level, report.region_code)
            if body is not None and body not in resolved:
                resolved.append(body)
    return resolved


def escalation_target(
    bodies: Sequence[BodyRef], report_region_code: str, highest_union_level_notified: BodyLevel | None
) -> BodyRef | None:
    """The covering union body above the highest union level notified so far; levels with none are skipped.

    None when nothing covers above (no escalation above province). With no union notified yet (None), the search
    starts at county.
    """
    if highest_union_level_notified is None:
        start: BodyLevel | None = BodyLevel.county
    else:
        start = highest_union_level_notified.above
    if start is None:
        return None
    return resolve_pair(bodies, BodyKind.union, start, report_region_code)
