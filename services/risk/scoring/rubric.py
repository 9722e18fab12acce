"""The rubric as data: pydantic models for `rubrics/*.yaml`, loading, and the checks run when a rubric is loaded.

A rubric names report fields by dotted paths (`workers_involved`, `arrears.amount_owed_cny`) and the history of the
enterprise by `history.<field>`. Paths, enum values and text placeholders are checked against `Report` and
`History` at load time, so a typo in a rubric fails at start-up rather than scoring silently wrong.
"""

from __future__ import annotations

import string
import types
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import Enum
from functools import cached_property
from importlib import resources
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Union, get_args, get_origin, get_type_hints
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import ErrorDetails

from shared.events import RiskLevel
from shared.report import Report, ReportKind

RUBRICS_PACKAGE = "services.risk.rubrics"
DEFAULT_VERSION = "task7-v1"


HISTORY_WINDOW = timedelta(days=90)  # how far back `history.earlier_reports_in_90_days` counts (C16)


@dataclass(frozen=True)
class History:
    """What the risk service knows about the enterprise beside the report itself (rubric paths `history.*`)."""

    earlier_reports_in_90_days: int = 0
    open_alert: bool = False


class RubricError(Exception):
    """A rubric file that cannot be used; the message names the file and the bad entry."""


# --- field paths -------------------------------------------------------------------------------------------------

HISTORY_ROOT = "history"
_HISTORY_TYPES: dict[str, Any] = get_type_hints(History)
_NUMERIC = (int, float)


def _unwrap_optional(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return annotation


def field_type(path: str) -> Any:
    """The type a rubric path points at (None-able kind blocks unwrapped); raises ValueError for an unknown path."""
    parts = path.split(".")
    if parts[0] == HISTORY_ROOT:
        if len(parts) != 2 or parts[1] not in _HISTORY_TYPES:
            raise ValueError(f"unknown field '{path}' (history has {', '.join(sorted(_HISTORY_TYPES))})")
        return _HISTORY_TYPES[parts[1]]
    model: type[BaseModel] = Report
    annotation: Any = None
    for i, part in enumerate(parts):
        info = model.model_fields.get(part)
        if info is None:
            raise ValueError(f"unknown field '{path}'")
        annotation = _unwrap_optional(info.annotation)
        if i < len(parts) - 1:
            if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
                raise ValueError(f"unknown field '{path}': '{part}' has no fields")
            model = annotation
    return annotation


def _enum_values(annotation: Any) -> tuple[list[str], bool] | None:
    """The allowed values of an enum-like field and whether the field is a set of them; None if not enum-like."""
    is_set = get_origin(annotation) in (frozenset, set)
    member = get_args(annotation)[0] if is_set else annotation
    if isinstance(member, type) and issubclass(member, Enum):
        return [str(m.value) for m in member], is_set
    if get_origin(member) is Literal:
        return [str(a) for a in get_args(member)], is_set
    return None


def _is_numeric(annotation: Any) -> bool:
    return annotation in _NUMERIC


# --- texts -------------------------------------------------------------------------------------------------------

_REPORT_ROOTS = frozenset(Report.model_fields) | {HISTORY_ROOT}


def _check_template(template: str, extra_names: frozenset[str]) -> None:
    for _, name, _, _ in string.Formatter().parse(template):
        if name is None:
            continue
        if not name:
            raise ValueError(f"positional placeholder '{{}}' in text {template!r}")
        path = name.split("[", 1)[0]
        if path in extra_names:
            continue
        if path.split(".", 1)[0] not in _REPORT_ROOTS:
            allowed = ", ".join(sorted(extra_names))
            raise ValueError(f"unknown placeholder '{{{name}}}' in text {template!r} (use {allowed} or a field path)")
        field_type(path)


EntryId = Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$")]


class _Entry(BaseModel):
    """A criterion or a floor: an id, an optional name, and the zh/en text templates of its reason."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: EntryId
    name: str = ""
    text_zh: Annotated[str, Field(min_length=1)]
    text_en: Annotated[str, Field(min_length=1)]

    # Names a text may use besides field paths; the engine fills them in for each kind of entry.
    placeholders: ClassVar[frozenset[str]] = frozenset({"points"})

    @model_validator(mode="after")
    def _texts_are_valid_templates(self) -> _Entry:
        for template in (self.text_zh, self.text_en):
            _check_template(template, type(self).placeholders)
        return self


# --- conditions --------------------------------------------------------------------------------------------------

Operator = Literal["==", "!=", ">=", ">", "<=", "<", "in", "contains", "not_empty"]
Scalar = bool | int | float | str


class Condition(BaseModel):
    """Either one comparison (`field`, `op`, `value`) or a group: `all_of` / `any_of` a list of conditions."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str | None = None
    op: Operator | None = None
    value: Scalar | list[Scalar] | None = None
    all_of: list[Condition] | None = None
    any_of: list[Condition] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Condition:
        groups = [g for g in (self.all_of, self.any_of) if g is not None]
        if groups:
            if self.field is not None or self.op is not None or self.value is not None or len(groups) > 1:
                raise ValueError("a condition is either a comparison or one of all_of / any_of")
            if not groups[0]:
                raise ValueError("all_of / any_of needs at least one condition")
            return self
        if self.field is None or self.op is None:
            raise ValueError("a comparison needs 'field' and 'op'")
        annotation = field_type(self.field)
        if self.op == "not_empty":
            if self.value is not None:
                raise ValueError("'not_empty' takes no value")
        elif self.value is None:
            raise ValueError(f"'{self.op}' needs a value")
        elif self.op == "in" and not isinstance(self.value, list):
            raise ValueError("'in' needs a list value")
        elif self.op in (">=", ">", "<=", "<") and not _is_numeric(annotation):
            raise ValueError(f"'{self.op}' needs a numeric field, '{self.field}' is not")
        return self


# --- criteria ----------------------------------------------------------------------------------------------------


class _CriterionBase(_Entry):
    applies_to_kinds: tuple[ReportKind, ...] | None = None  # a tuple, so the rubric dumps in a stable order

    def applies_to(self, kind: ReportKind) -> bool:
        return self.applies_to_kinds is None or kind in self.applies_to_kinds


class Band(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min: int | float
    points: Annotated[int, Field(ge=0)]
    exclusive: bool = False
    # What this band means beyond its number (e.g. the legal threshold it reaches): `{note}` in the criterion's texts.
    note_zh: str = ""
    note_en: str = ""

    @cached_property
    def bound(self) -> str:
        """The threshold as shown in texts: `≥300`, `≥1,000,000`, `>0`."""
        number = f"{int(self.min):,}" if self.min == int(self.min) else f"{self.min:,}"
        return f"{'>' if self.exclusive else '≥'}{number}"

    def matches(self, value: float) -> bool:
        return value > self.min if self.exclusive else value >= self.min


class BandCriterion(_CriterionBase):
    """Points from the first band (highest first) whose threshold a numeric field reaches."""

    type: Literal["band"]
    field: str
    bands: Annotated[list[Band], Field(min_length=1)]
    placeholders: ClassVar[frozenset[str]] = frozenset({"points", "value", "bound", "note"})

    @model_validator(mode="after")
    def _bands_descend(self) -> BandCriterion:
        if not _is_numeric(field_type(self.field)):
            raise ValueError(f"band needs a numeric field, '{self.field}' is not")
        for higher, lower in pairwise(self.bands):
            if not lower.min < higher.min:
                raise ValueError(f"bands must be strictly descending by min: {higher.min:g} then {lower.min:g}")
        return self


class EnumCriterion(_CriterionBase):
    """Points per value of an enum field; for a set field, the sum over the distinct members present, up to `cap`."""

    type: Literal["enum"]
    field: str
    points: Annotated[dict[str, Annotated[int, Field(ge=0)]], Field(min_length=1)]
    labels_zh: dict[str, str] = Field(default_factory=dict)
    labels_en: dict[str, str] = Field(default_factory=dict)
    cap: Annotated[int, Field(ge=0)] | None = None
    placeholders: ClassVar[frozenset[str]] = frozenset({"points", "value", "label"})

    @model_validator(mode="after")
    def _values_exist(self) -> EnumCriterion:
        allowed = _enum_values(field_type(self.field))
        if allowed is None:
            raise ValueError(f"enum needs an enum or set field, '{self.field}' is not")
        for mapping_name, mapping in (("points", self.points), ("labels_zh", self.labels_zh),
                                      ("labels_en", self.labels_en)):
            unknown = sorted(set(mapping) - set(allowed[0]))
            if unknown:
                raise ValueError(f"{mapping_name}: unknown value(s) {unknown} for '{self.field}'")
        return self

    @cached_property
    def is_set(self) -> bool:
        """Whether the field is a set (points summed over its members) rather than one value."""
        return get_origin(field_type(self.field)) in (frozenset, set)


class FlagCriterion(_CriterionBase):
    """Fixed points when a boolean field is true."""

    type: Literal["flag"]
    field: str
    points: Annotated[int, Field(ge=0)]

    @model_validator(mode="after")
    def _field_is_bool(self) -> FlagCriterion:
        if field_type(self.field) is not bool:
            raise ValueError(f"flag needs a boolean field, '{self.field}' is not")
        return self


class ConditionCriterion(_CriterionBase):
    """Fixed points when a condition (comparisons combined with all_of / any_of) holds."""

    type: Literal["condition"]
    when: Condition
    points: Annotated[int, Field(ge=0)]


def _month_day(text: str) -> tuple[int, int]:
    try:
        parsed = date.fromisoformat(f"2000-{text}")  # a leap year, so 02-29 is accepted
    except ValueError:
        raise ValueError(f"'{text}' is not a month-day like '12-15'") from None
    return parsed.month, parsed.day


class SeasonCriterion(_CriterionBase):
    """Points per report kind when a time field falls, in the rubric's time zone, in a month-day range (inclusive,
    wrapping the year end when `start` is after `end`)."""

    type: Literal["season"]
    field: str = "occurred_at"
    start: str
    end: str
    points_by_kind: dict[ReportKind, Annotated[int, Field(ge=0)]]
    placeholders: ClassVar[frozenset[str]] = frozenset({"points", "value"})

    @field_validator("start", "end")
    @classmethod
    def _is_month_day(cls, text: str) -> str:
        _month_day(text)
        return text

    @model_validator(mode="after")
    def _field_is_time(self) -> SeasonCriterion:
        if field_type(self.field) not in (datetime, AwareDatetime):
            raise ValueError(f"season needs a time field, '{self.field}' is not")
        return self

    def contains(self, local: datetime) -> bool:
        start, end, day = _month_day(self.start), _month_day(self.end), (local.month, local.day)
        if start <= end:
            return start <= day <= end
        return day >= start or day <= end


Criterion = Annotated[
    BandCriterion | EnumCriterion | FlagCriterion | ConditionCriterion | SeasonCriterion, Field(discriminator="type")
]
CRITERION_TYPES = ("band", "enum", "flag", "condition", "season")


# --- floors, levels, rubric --------------------------------------------------------------------------------------


class Floor(_Entry):
    """When the condition holds, the score (after the sum, before the cap) is at least `min_score`."""

    when: Condition
    min_score: Annotated[int, Field(ge=0)]
    placeholders: ClassVar[frozenset[str]] = frozenset({"points", "min_score"})


class Level(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    level: RiskLevel
    min_score: Annotated[int, Field(ge=0)]
    ack_deadline_seconds: Annotated[int, Field(gt=0)] | None
    name_zh: Annotated[str, Field(min_length=1)]
    name_en: Annotated[str, Field(min_length=1)]


class Rubric(BaseModel):
    """One version of the rubric. `model_dump(mode="json")` is what GET /v1/rubric shows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Annotated[str, Field(min_length=1)]
    description: str = ""
    timezone: str
    cap: Annotated[int, Field(ge=1, le=100)]
    levels: list[Level]
    criteria: list[Criterion]
    floors: list[Floor] = Field(default_factory=list)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone '{name}'") from None
        return name

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def level_for(self, score: int) -> RiskLevel:
        """The level of a (capped) score: the level with the highest `min_score` the score reaches."""
        for level in self._levels_by_score:
            if score >= level.min_score:
                return level.level
        raise ValueError(f"score {score} is below every level")  # unreachable: a checked rubric has a level at 0

    def ack_deadline_seconds(self, level: RiskLevel) -> int | None:
        """The acknowledgement deadline for an alert of this level; None when the level opens no alert."""
        for entry in self.levels:
            if entry.level == level:
                return entry.ack_deadline_seconds
        raise KeyError(level)

    @cached_property
    def _levels_by_score(self) -> list[Level]:
        return sorted(self.levels, key=lambda entry: entry.min_score, reverse=True)


def _semantic_errors(rubric: Rubric) -> list[str]:
    """Rules across entries that the per-entry models cannot see."""
    return _duplicate_ids(rubric) + _level_errors(rubric.levels)


def _duplicate_ids(rubric: Rubric) -> list[str]:
    errors: list[str] = []
    seen: dict[str, str] = {}
    sections: list[tuple[str, list[str]]] = [
        ("criteria", [criterion.id for criterion in rubric.criteria]),
        ("floors", [floor.id for floor in rubric.floors]),
    ]
    for section, ids in sections:
        for index, entry_id in enumerate(ids):
            where = f"{section}[{index}]"
            if entry_id in seen:
                errors.append(f"{where} ({entry_id}): duplicate id '{entry_id}' (also {seen[entry_id]})")
            else:
                seen[entry_id] = where
    return errors


def _level_errors(levels: list[Level]) -> list[str]:
    errors: list[str] = []
    present = [entry.level for entry in levels]
    for level in RiskLevel:
        if level not in present:
            errors.append(f"levels: missing level '{level}'")
        elif present.count(level) > 1:
            errors.append(f"levels: level '{level}' appears more than once")
    if not any(entry.min_score == 0 for entry in levels):
        errors.append("levels: no level starts at min_score 0, so low scores have no level")
    by_rank = sorted(levels, key=lambda entry: entry.level.rank)
    for lower, higher in pairwise(by_rank):
        if not lower.min_score < higher.min_score:
            errors.append(f"levels: '{higher.level}' must start above '{lower.level}' ({higher.min_score} "
                          f"is not above {lower.min_score})")
    for index, entry in enumerate(levels):
        if entry.level.alerts and entry.ack_deadline_seconds is None:
            errors.append(f"levels[{index}] ({entry.level}): opens an alert, so it needs ack_deadline_seconds")
        if not entry.level.alerts and entry.ack_deadline_seconds is not None:
            errors.append(f"levels[{index}] ({entry.level}): opens no alert, so ack_deadline_seconds must be null")
    return errors


# --- loading -----------------------------------------------------------------------------------------------------


def _describe(error: ErrorDetails, raw: Any) -> str:
    loc: list[int | str] = list(error["loc"])
    where = ""
    label = ""
    if loc and isinstance(raw, dict):
        where = str(loc.pop(0))
        section = raw.get(where)
        if loc and isinstance(loc[0], int):
            index = int(loc.pop(0))
            where += f"[{index}]"
            entry = section[index] if isinstance(section, list) and index < len(section) else None
            if isinstance(entry, dict):
                label = str(entry.get("id") or entry.get("level") or "")
            if loc and str(loc[0]) in CRITERION_TYPES:  # the discriminated union adds the tag to the location
                loc.pop(0)
    if error["type"] == "union_tag_invalid":
        tag = error.get("ctx", {}).get("tag")
        message = f"unknown type '{tag}' (known: {', '.join(CRITERION_TYPES)})"
    elif error["type"] == "union_tag_not_found":
        message = f"missing 'type' (one of {', '.join(CRITERION_TYPES)})"
    else:
        message = error["msg"].removeprefix("Value error, ")
    rest = ".".join(str(part) for part in loc)
    head = where + (f" ({label})" if label else "")
    if rest:
        head = f"{head}: {rest}" if head else rest
    return f"{head}: {message}" if head else message


def parse_rubric(text: str, source: str) -> Rubric:
    """Validate rubric YAML text; `source` names it in errors."""
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise RubricError(f"{source}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise RubricError(f"{source}: a rubric is a mapping with version, levels, criteria and floors")
    try:
        rubric = Rubric.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{source}: {_describe(error, raw)}" for error in exc.errors()]
        raise RubricError("\n".join(lines)) from None
    errors = _semantic_errors(rubric)
    if errors:
        raise RubricError("\n".join(f"{source}: {error}" for error in errors))
    return rubric


def available_versions() -> list[str]:
    """The versions shipped with the service: one `<version>.yaml` each in the rubrics package."""
    return sorted(
        entry.name.removesuffix(".yaml")
        for entry in resources.files(RUBRICS_PACKAGE).iterdir()
        if entry.is_file() and entry.name.endswith(".yaml")
    )


def load_rubric(path_or_version: str | Path = DEFAULT_VERSION) -> Rubric:
    """Load a rubric from a file path, or a shipped version by name (`task7-v1`); raises RubricError."""
    if isinstance(path_or_version, Path) or path_or_version.endswith((".yaml", ".yml")) or "/" in path_or_version:
        path = Path(path_or_version)
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise RubricError(f"{path.name}: cannot read: {exc.strerror}") from None
        return parse_rubric(text, path.name)
    version = path_or_version
    if version not in available_versions():
        raise RubricError(f"{version}.yaml: no such rubric version (available: {', '.join(available_versions())})")
    source = f"{version}.yaml"
    rubric = parse_rubric(resources.files(RUBRICS_PACKAGE).joinpath(source).read_text(encoding="utf-8"), source)
    if rubric.version != version:
        raise RubricError(f"{source}: version '{rubric.version}' does not match the file name")
    return rubric
