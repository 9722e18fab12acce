"""Acknowledgement deadlines in working time: pure functions, no I/O beyond reading the packaged calendar once.

Red and orange deadlines run on the clock, day and night: the rubric's `ack_deadline_seconds` after the alert opened
(or escalated). A yellow deadline is the same clock time (Asia/Shanghai) on the next working day after the day the
alert opened (or escalated), by the official calendar of public holidays and makeup working days (调休) in
`cn_workdays.yaml`: opened Friday 15:00 → due Monday 15:00; opened the day before the 2026 Spring Festival break →
due on the first working day after it; a makeup Saturday is a working day. A year the calendar does not list falls
back to weekends only: the deadline says so in its rule, a warning is logged once per year and process, and
`alerts_calendar_fallback_total{year}` counts each deadline computed that way.

`ACK_DEADLINE_SCALE` multiplies the wait, not the calendar: the timer fires at
`start + (working_due_at - start) × scale`, so with scale 1 it is the working-time deadline itself and with 0.002 a
weekend-long wait of 72 h becomes 8.6 minutes. The alert shows `working_due_at` and its `rule`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from importlib import resources
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

import yaml

from services.alerts.metrics import CALENDAR_FALLBACK

__all__ = [
    "CALENDAR_FALLBACK",
    "CALENDAR_RESOURCE",
    "NEXT_WORKING_DAY_LEVELS",
    "RULE_CLOCK_HOURS",
    "RULE_NEXT_WORKING_DAY",
    "RULE_NEXT_WORKING_DAY_WEEKENDS_ONLY",
    "SHANGHAI",
    "AckDeadline",
    "DeadlineRule",
    "WorkingCalendar",
    "ack_deadline",
    "covered_years",
    "default_calendar",
    "next_working_day",
    "parse_calendar",
    "scaled_wait",
]

log = logging.getLogger(__name__)

SHANGHAI: Final = ZoneInfo("Asia/Shanghai")
CALENDAR_RESOURCE: Final = "cn_workdays.yaml"

RULE_CLOCK_HOURS: Final = "clock_hours"
RULE_NEXT_WORKING_DAY: Final = "next_working_day"
RULE_NEXT_WORKING_DAY_WEEKENDS_ONLY: Final = "next_working_day_weekends_only"
DeadlineRule = Literal["clock_hours", "next_working_day", "next_working_day_weekends_only"]

# Levels whose deadline is the next working day (TASK7: yellow); every other level runs on the clock.
NEXT_WORKING_DAY_LEVELS: Final = frozenset({"yellow"})

_SATURDAY: Final = 5
# A next working day is never further than this: the longest break (Spring Festival) is 9 days.
_MAX_DAYS_AHEAD: Final = 60


@dataclass(frozen=True)
class AckDeadline:
    """When an alert must be acknowledged, and why.

    `working_due_at` is the deadline in working time (aware, UTC), the one to show; `due_at` is when the timer fires,
    the wait from `start` scaled by `ACK_DEADLINE_SCALE` (equal to `working_due_at` at scale 1); `rule` names what set
    it: `clock_hours`, `next_working_day` or `next_working_day_weekends_only` (calendar did not cover the year).
    """

    due_at: datetime
    working_due_at: datetime
    rule: DeadlineRule


@dataclass(frozen=True)
class WorkingCalendar:
    """The official calendar: days off that would otherwise be working days, makeup working days, covered years."""

    holidays: frozenset[date]
    makeup_workdays: frozenset[date]
    sources: Mapping[int, str]

    def covers(self, year: int) -> bool:
        return year in self.sources

    def is_working_day(self, day: date) -> bool:
        """Working day by the official calendar; by weekends only for a year the calendar does not cover."""
        if day in self.makeup_workdays:
            return True
        if day in self.holidays:
            return False
        return day.weekday() < _SATURDAY


def parse_calendar(raw: Mapping[str, Any]) -> WorkingCalendar:
    """Build a calendar from the YAML structure of `cn_workdays.yaml` (`years: {YYYY: {source, holidays, ...}}`)."""
    holidays: set[date] = set()
    makeup: set[date] = set()
    sources: dict[int, str] = {}
    for key, entry in raw["years"].items():
        year = int(key)
        source = str(entry["source"]).strip()
        if not source:
            raise ValueError(f"calendar year {year} names no source")
        sources[year] = source
        for period in entry["holidays"]:
            first, last = _day(period["from"]), _day(period["to"])
            if first > last or first.year != year or last.year != year:
                raise ValueError(f"calendar year {year}: bad holiday period {period!r}")
            holidays.update(first + timedelta(days=n) for n in range((last - first).days + 1))
        for value in entry.get("makeup_workdays", ()):
            day = _day(value)
            if day.year != year or day.weekday() < _SATURDAY:
                raise ValueError(f"calendar year {year}: makeup working day {day} is not a weekend day of that year")
            makeup.add(day)
    if holidays & makeup:
        raise ValueError(f"days both off and working: {sorted(holidays & makeup)}")
    return WorkingCalendar(holidays=frozenset(holidays), makeup_workdays=frozenset(makeup), sources=sources)


def _day(value: object) -> date:
    # PyYAML reads an unquoted 2026-02-15 as a date already; a quoted one is text.
    return value if isinstance(value, date) else date.fromisoformat(str(value))


@lru_cache(maxsize=1)
def default_calendar() -> WorkingCalendar:
    """The packaged official calendar (`services/alerts/cn_workdays.yaml`), read once per process."""
    text = resources.files(__package__ or "services.alerts").joinpath(CALENDAR_RESOURCE).read_text(encoding="utf-8")
    return parse_calendar(yaml.safe_load(text))


_warned_years: set[int] = set()
_warned_lock = threading.Lock()


def _fall_back(year: int) -> None:
    """Record that a deadline was computed by weekends only: a metric every time, a warning once per year."""
    CALENDAR_FALLBACK.labels(year=str(year)).inc()
    with _warned_lock:
        first = year not in _warned_years
        _warned_years.add(year)
    if first:
        log.warning("official working-day calendar does not cover %d: yellow deadlines count weekends only "
                    "(add the year's State Council holiday notice to services/alerts/%s)", year, CALENDAR_RESOURCE)


def next_working_day(day: date, calendar: WorkingCalendar | None = None) -> tuple[date, bool]:
    """The first working day after `day`, and whether a year the calendar does not cover was counted by weekends.

    Only the days looked at matter: a Friday in the last covered year whose Monday falls in an uncovered year is
    counted by weekends only for that Monday.
    """
    calendar = calendar or default_calendar()
    fallback_years: list[int] = []
    candidate = day
    for _ in range(_MAX_DAYS_AHEAD):
        candidate += timedelta(days=1)
        if not calendar.covers(candidate.year) and candidate.year not in fallback_years:
            fallback_years.append(candidate.year)
        if calendar.is_working_day(candidate):
            for year in fallback_years:
                _fall_back(year)
            return candidate, bool(fallback_years)
    raise ValueError(f"no working day within {_MAX_DAYS_AHEAD} days after {day}: the calendar data is wrong")


def ack_deadline(level: str, start: datetime, clock_seconds: int | None, *, scale: float = 1.0,
                 calendar: WorkingCalendar | None = None, zone: ZoneInfo = SHANGHAI) -> AckDeadline | None:
    """The acknowledgement deadline of an alert of `level` that opened (or escalated) at `start` (aware).

    `clock_seconds` is the rubric's `ack_deadline_seconds` for the level: None means the level has no deadline
    (blue, none) and gives None. A level in NEXT_WORKING_DAY_LEVELS is due at `start`'s clock time in `zone` on the
    next working day (its `clock_seconds` only says that it has a deadline); any other level `clock_seconds` later.
    `scale` is ACK_DEADLINE_SCALE (> 0): it scales the wait, see AckDeadline.
    """
    if start.tzinfo is None or start.utcoffset() is None:
        raise ValueError("start must be timezone-aware")
    if not scale > 0:
        raise ValueError("scale must be positive")
    if clock_seconds is None:
        return None
    rule: DeadlineRule
    if level in NEXT_WORKING_DAY_LEVELS:
        local = start.astimezone(zone)
        due_day, fallback = next_working_day(local.date(), calendar)
        # Same wall-clock time; Asia/Shanghai has no DST, and fold/gaps elsewhere resolve by zoneinfo's rules.
        working = datetime.combine(due_day, time(local.hour, local.minute, local.second, local.microsecond),
                                   tzinfo=zone)
        rule = RULE_NEXT_WORKING_DAY_WEEKENDS_ONLY if fallback else RULE_NEXT_WORKING_DAY
    else:
        working = start + timedelta(seconds=clock_seconds)
        rule = RULE_CLOCK_HOURS
    return AckDeadline(due_at=(start + scaled_wait(start, working, scale)).astimezone(UTC),
                       working_due_at=working.astimezone(UTC), rule=rule)


def scaled_wait(start: datetime, working_due_at: datetime, scale: float) -> timedelta:
    """The timer's wait for a working-time deadline: `(working_due_at - start) × scale` (ACK_DEADLINE_SCALE)."""
    if not scale > 0:
        raise ValueError("scale must be positive")
    return (working_due_at - start) * scale


def covered_years(calendar: WorkingCalendar | None = None) -> list[int]:
    """Years the official calendar covers, ascending (for a readiness or status page)."""
    return sorted((calendar or default_calendar()).sources)
