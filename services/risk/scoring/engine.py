"""Scoring a report with a rubric: a pure function of (rubric, report, history), no I/O.

The score is the sum of the criteria's points, then the floors (each floor that holds raises the running score to
its `min_score`, in rubric order), then the cap. Every criterion that gives points and every floor that raises the
score is a reason, so the reasons always add up to the score before the cap. When the cap lowers the score, the
reasons are kept as they are and no negative reason is added: they explain why the score reached the cap.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Any

from services.risk.scoring.rubric import (
    HISTORY_ROOT,
    BandCriterion,
    Condition,
    ConditionCriterion,
    EnumCriterion,
    FlagCriterion,
    History,
    Rubric,
    SeasonCriterion,
)
from shared.events import Reason, RiskLevel
from shared.report import Report

__all__ = ["Assessment", "History", "score_report"]


@dataclass(frozen=True)
class Assessment:
    """The outcome of scoring one report: capped score, its level, the rubric version and why."""

    score: int
    level: RiskLevel
    rubric_version: str
    reasons: tuple[Reason, ...]


class _Subject:
    """What a rubric path can read: the report's fields and, under `history.`, the enterprise's history."""

    __slots__ = ("history", "report")

    def __init__(self, report: Report, history: History) -> None:
        self.report = report
        self.history = history

    def get(self, path: str) -> Any:
        parts = _split(path)
        value: Any = self.history if parts[0] == HISTORY_ROOT else getattr(self.report, parts[0])
        for part in parts[1:]:
            if value is None:  # a kind block absent for this kind
                return None
            value = getattr(value, part)
        return value


@lru_cache(maxsize=1024)
def _split(path: str) -> tuple[str, ...]:
    return tuple(path.split("."))


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


class _TextFormatter(string.Formatter):
    """`str.format` plus English plurals: `{value:month|months}` gives `1 month` or `3 months` (the number, a space,
    then the singular for exactly 1 and the plural otherwise); any other format spec is the usual one."""

    def format_field(self, value: Any, format_spec: str) -> str:
        if "|" in format_spec:
            singular, plural = format_spec.split("|", 1)
            return f"{value} {singular if value == 1 else plural}"
        return str(super().format_field(value, format_spec))


_TEXT = _TextFormatter()


# A template split once into (literal text, field name, format spec, conversion) parts.
_Parts = tuple[tuple[str, str | None, str | None, str | None], ...]


@lru_cache(maxsize=1024)
def _parts(template: str) -> _Parts | None:
    """The template parsed once (every report renders the same few templates), or None when it needs
    `str.format`'s general path: positional or auto-numbered fields, or a nested field in a format spec."""
    try:
        parts = tuple(_TEXT.parse(template))
    except ValueError:
        return None  # malformed: `vformat` raises the error
    for _, field, spec, _ in parts:
        if field is not None and (field == "" or field[0].isdigit() or "{" in (spec or "")):
            return None
    return parts


def render(template: str, names: dict[str, Any]) -> str:
    """A reason text from its template (see _TextFormatter) and the names of _Placeholders; the same text as
    `_TEXT.vformat(template, (), names)`, without parsing the template again for every report."""
    parts = _parts(template)
    if parts is None:
        return _TEXT.vformat(template, (), names)
    out: list[str] = []
    for literal, field, spec, conversion in parts:
        if literal:
            out.append(literal)
        if field is None:
            continue
        # What `get_field`, `convert_field` and `format_field` do, short-cut for the common plain cases.
        value = _TEXT.get_field(field, (), names)[0] if "." in field or "[" in field else names[field]
        if conversion is not None:
            value = _TEXT.convert_field(value, conversion)
        out.append(value if not spec and type(value) is str else _TEXT.format_field(value, spec or ""))
    return "".join(out)


class _Placeholders(dict[str, Any]):
    """Names for a reason text: the entry's own (value, label, ...) first, then report and history fields."""

    def __init__(self, subject: _Subject, own: dict[str, Any]) -> None:
        super().__init__(own)
        self._subject = subject

    def __missing__(self, key: str) -> Any:
        return self._subject.history if key == HISTORY_ROOT else getattr(self._subject.report, key)


# --- conditions --------------------------------------------------------------------------------------------------


def holds(condition: Condition, subject: _Subject) -> bool:
    """Whether a condition holds; a comparison on an absent value (another kind's block) never holds."""
    if condition.all_of is not None:
        return all(holds(part, subject) for part in condition.all_of)
    if condition.any_of is not None:
        return any(holds(part, subject) for part in condition.any_of)
    # Condition's validator guarantees a comparison has both.
    assert condition.field is not None
    assert condition.op is not None
    actual = subject.get(condition.field)
    if actual is None:
        return False
    return _compare(condition.op, actual, condition.value)


def _compare(op: str, actual: Any, expected: Any) -> bool:
    if op == "not_empty":
        return bool(actual)
    if op == "contains":
        return expected in {_plain(member) for member in actual}
    actual = _plain(actual)
    if op == "==":
        return bool(actual == expected)
    if op == "!=":
        return bool(actual != expected)
    if op == "in":
        return actual in expected
    if op == ">=":
        return bool(actual >= expected)
    if op == ">":
        return bool(actual > expected)
    if op == "<=":
        return bool(actual <= expected)
    if op == "<":
        return bool(actual < expected)
    raise ValueError(f"unknown operator {op!r}")  # unreachable: Condition restricts op


# --- criteria ----------------------------------------------------------------------------------------------------

# An evaluation gives the points and the placeholders for the zh and en texts; None means no points.
_Evaluation = tuple[int, dict[str, Any], dict[str, Any]] | None


def _band(criterion: BandCriterion, subject: _Subject, rubric: Rubric) -> _Evaluation:
    value = subject.get(criterion.field)
    if value is None:
        return None
    for band in criterion.bands:
        if band.matches(value):
            names = {"value": value, "bound": band.bound, "points": band.points}
            return band.points, {**names, "note": band.note_zh}, {**names, "note": band.note_en}
    return None


def _enum(criterion: EnumCriterion, subject: _Subject, rubric: Rubric) -> _Evaluation:
    value = subject.get(criterion.field)
    if value is None:
        return None
    if criterion.is_set:
        present = {_plain(member) for member in value}
        # Rubric order, so texts do not depend on set iteration order.
        scoring = [key for key, points in criterion.points.items() if points > 0 and key in present]
    else:
        key = _plain(value)
        scoring = [key] if criterion.points.get(key, 0) > 0 else []
    if not scoring:
        return None
    points = sum(criterion.points[key] for key in scoring)
    if criterion.cap is not None:
        points = min(points, criterion.cap)
    raw = ", ".join(scoring)
    zh = {"value": raw, "points": points, "label": "、".join(criterion.labels_zh.get(key, key) for key in scoring)}
    en = {"value": raw, "points": points,
          "label": ", ".join(criterion.labels_en.get(key, key.replace("_", " ")) for key in scoring)}
    return points, zh, en


def _flag(criterion: FlagCriterion, subject: _Subject, rubric: Rubric) -> _Evaluation:
    if subject.get(criterion.field) is not True:
        return None
    names = {"points": criterion.points}
    return criterion.points, names, names


def _condition(criterion: ConditionCriterion, subject: _Subject, rubric: Rubric) -> _Evaluation:
    if not holds(criterion.when, subject):
        return None
    names = {"points": criterion.points}
    return criterion.points, names, names


def _season(criterion: SeasonCriterion, subject: _Subject, rubric: Rubric) -> _Evaluation:
    points = criterion.points_by_kind.get(subject.report.kind, 0)
    when = subject.get(criterion.field)
    if points <= 0 or when is None:
        return None
    local = when.astimezone(rubric.zone)
    if not criterion.contains(local):
        return None
    names = {"value": local.date().isoformat(), "points": points}
    return points, names, names


_EVALUATORS: dict[type[Any], Callable[[Any, _Subject, Rubric], _Evaluation]] = {
    BandCriterion: _band,
    EnumCriterion: _enum,
    FlagCriterion: _flag,
    ConditionCriterion: _condition,
    SeasonCriterion: _season,
}


# --- the score ---------------------------------------------------------------------------------------------------


def score_report(rubric: Rubric, report: Report, history: History = History()) -> Assessment:
    """Score a report: criteria in rubric order, then floors, then the cap, then the level."""
    subject = _Subject(report, history)
    reasons: list[Reason] = []
    total = 0
    for criterion in rubric.criteria:
        if not criterion.applies_to(report.kind):
            continue
        evaluation = _EVALUATORS[type(criterion)](criterion, subject, rubric)
        if evaluation is None or evaluation[0] <= 0:
            continue
        points, zh, en = evaluation
        total += points
        reasons.append(Reason(
            criterion=criterion.id,
            points=points,
            text_zh=render(criterion.text_zh, _Placeholders(subject, zh)),
            text_en=render(criterion.text_en, _Placeholders(subject, en)),
        ))
    for floor in rubric.floors:
        if total < floor.min_score and holds(floor.when, subject):
            names = {"points": floor.min_score - total, "min_score": floor.min_score}
            reasons.append(Reason(
                criterion=floor.id,
                points=floor.min_score - total,
                text_zh=render(floor.text_zh, _Placeholders(subject, names)),
                text_en=render(floor.text_en, _Placeholders(subject, names)),
            ))
            total = floor.min_score
    score = min(total, rubric.cap)
    return Assessment(score=score, level=rubric.level_for(score), rubric_version=rubric.version,
                      reasons=tuple(reasons))
