"""What intake checks beyond the shared report schema: check characters, region codes (`shared.regions`), the
time window, the kind block, and the personal `contact` block that only intake ever sees.

Every message is zh-CN first with English beside it, and every error is raised on the field it is about, so that
the API can name the field (`enterprise.credit_code`, `arrears`, ...) in its 422 answer.
"""

from __future__ import annotations

import operator
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import AwareDatetime, Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from shared.regions import region_code_problem
from shared.report import (
    KIND_BLOCKS,
    ArrearsDetails,
    DisputeDetails,
    Enterprise,
    Report,
    StabilityDetails,
    StrictModel,
)

# GB 32100-2015: 18 characters from this alphabet (no I, O, Z, S, V); the last is a check character.
CREDIT_CODE_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
CREDIT_CODE_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)

MAX_FUTURE = timedelta(minutes=10)
MAX_PAST = timedelta(days=5 * 365 + 2)  # five years, leap days included


_CHARACTER_VALUES = {char: value for value, char in enumerate(CREDIT_CODE_ALPHABET)}


def credit_code_check_character(first17: str) -> str:
    """The check character of a unified social credit code from its first 17 characters."""
    pairs = zip(first17, CREDIT_CODE_WEIGHTS, strict=True)
    total = sum(CREDIT_CODE_ALPHABET.index(char) * weight for char, weight in pairs)
    return CREDIT_CODE_ALPHABET[(31 - total % 31) % 31]


def credit_code_is_valid(code: str) -> bool:
    # Runs for every submitted report: one dict lookup per character rather than a search of the alphabet.
    if len(code) != 18:
        return False
    try:
        values = [_CHARACTER_VALUES[char] for char in code]
    except KeyError:  # a character outside the alphabet
        return False
    # `map` stops at the 17 weights: the check character itself is not weighted.
    total: int = sum(map(operator.mul, values, CREDIT_CODE_WEIGHTS))
    return values[17] == (31 - total % 31) % 31


def make_credit_code(body: str) -> str:
    """A valid code from 17 characters (for tests and examples)."""
    return body + credit_code_check_character(body)


class Contact(StrictModel):
    """Personal data of the person to call back: stored encrypted, never published, never logged."""

    name: Annotated[str, Field(min_length=1, max_length=100)]
    phone: Annotated[str, Field(min_length=5, max_length=30, pattern=r"^[0-9+\-() ]+$")]

    def __repr__(self) -> str:  # keeps personal data out of tracebacks and debug logs
        return "Contact(<redacted>)"

    __str__ = __repr__


class SubmittedEnterprise(Enterprise):
    @field_validator("credit_code")
    @classmethod
    def _check_character(cls, value: str) -> str:
        if not credit_code_is_valid(value):
            raise PydanticCustomError(
                "credit_code", "统一社会信用代码校验位不正确 / the check character of the credit code is wrong"
            )
        return value


class ReportSubmission(Report):
    """The body of `POST /v1/reports`: a report plus the optional personal `contact` block."""

    enterprise: SubmittedEnterprise
    occurred_at: AwareDatetime
    arrears: ArrearsDetails | None = Field(default=None, validate_default=True)
    dispute: DisputeDetails | None = Field(default=None, validate_default=True)
    stability: StabilityDetails | None = Field(default=None, validate_default=True)
    contact: Contact | None = None

    @field_validator("occurred_at")
    @classmethod
    def _in_window(cls, value: datetime) -> datetime:
        now = datetime.now(UTC)
        if value > now + MAX_FUTURE:
            raise PydanticCustomError("occurred_at", "发生时间不能晚于当前时间 / must not be in the future")
        if value < now - MAX_PAST:
            raise PydanticCustomError("occurred_at", "发生时间不能早于 5 年前 / must not be more than 5 years ago")
        return value

    @field_validator("region_code")
    @classmethod
    def _county_level(cls, value: str) -> str:
        problem = region_code_problem(value)
        if problem is not None:
            raise PydanticCustomError("region_code", problem)
        return value

    @field_validator("migrant_workers_involved")
    @classmethod
    def _not_more_than_workers(cls, value: int, info: ValidationInfo) -> int:
        workers = info.data.get("workers_involved")
        if workers is not None and value > workers:
            raise PydanticCustomError(
                "migrant_workers_involved",
                "农民工人数不能超过涉及职工人数 / must not exceed workers_involved",
            )
        return value

    @field_validator("arrears", "dispute", "stability")
    @classmethod
    def _matches_kind(cls, value: Any, info: ValidationInfo) -> Any:
        kind = info.data.get("kind")
        if kind is None:
            return value
        expected = KIND_BLOCKS[kind]  # `kind` is validated already: a `ReportKind`
        if info.field_name == expected and value is None:
            raise PydanticCustomError(
                "kind_block", "类型为 {kind} 的报告必须填写此项 / required when kind is {kind}", {"kind": kind.value}
            )
        if info.field_name != expected and value is not None:
            raise PydanticCustomError(
                "kind_block", "类型为 {kind} 的报告不能填写此项 / not allowed when kind is {kind}",
                {"kind": kind.value},
            )
        return value

    def _kind_block_matches(self) -> ReportSubmission:  # type: ignore[override]
        """`Report`'s check that the kind block and the worker counts agree, left out here (a method of the same
        name, not a validator, replaces an inherited validator in pydantic): this model's field validators
        (`_matches_kind`, `_not_more_than_workers`) refuse the same reports, field by field, before it would run,
        so it could never fail (and ran for every submission)."""
        return self

    def to_report(self) -> Report:
        """The publishable report: everything but `contact`.

        Built from this model's fields as they are, without validating them again: they passed this model's rules,
        which are `Report`'s and stricter (a dump and a second validation were ~15 % of a batch item's CPU). Only
        the fields `Report` declares are taken, so `contact` cannot come along."""
        return Report.model_construct(
            _fields_set=self.model_fields_set - {"contact"},
            **{name: getattr(self, name) for name in _REPORT_FIELDS},
        )

    def report_json(self) -> str:
        """`to_report().model_dump_json()` without building the report: this model's JSON restricted to the
        fields `Report` declares (so `contact`, or any field only intake knows, never comes along). Their order
        and form are `Report`'s: the fields this model re-declares keep their inherited place."""
        return self.model_dump_json(include=_REPORT_FIELD_SET)


_REPORT_FIELDS = tuple(Report.model_fields)
_REPORT_FIELD_SET = set(_REPORT_FIELDS)
