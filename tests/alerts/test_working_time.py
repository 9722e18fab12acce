"""Acknowledgement deadlines in working time: clock hours for red and orange, next working day for yellow by the
official calendar (holidays and makeup working days), weekends only for a year the calendar does not cover."""

from __future__ import annotations

import logging
from datetime import UTC, date, datetime, timedelta

import pytest

from services.alerts import working_time
from services.alerts.working_time import (
    CALENDAR_FALLBACK,
    RULE_CLOCK_HOURS,
    RULE_NEXT_WORKING_DAY,
    RULE_NEXT_WORKING_DAY_WEEKENDS_ONLY,
    SHANGHAI,
    AckDeadline,
    ack_deadline,
    covered_years,
    default_calendar,
    next_working_day,
    parse_calendar,
    scaled_wait,
)

pytestmark = pytest.mark.unit

YELLOW = 86400  # the rubric's ack_deadline_seconds: says only that the level has a deadline


def shanghai(year: int, month: int, day: int, hour: int = 15, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def yellow(start: datetime, scale: float = 1.0) -> AckDeadline:
    deadline = ack_deadline("yellow", start, YELLOW, scale=scale)
    assert deadline is not None
    return deadline


def fallback_count(year: int) -> float:
    value = CALENDAR_FALLBACK.labels(year=str(year))._value.get()
    return float(value)


@pytest.fixture(autouse=True)
def _fresh_warnings() -> None:
    # "once per year per process": start each test as a fresh process would.
    working_time._warned_years.clear()


def test_the_packaged_calendar_names_its_source_and_covers_2026() -> None:
    calendar = default_calendar()
    assert 2026 in covered_years()
    assert "国办发明电〔2025〕7号" in calendar.sources[2026]
    assert "国办发明电〔2024〕12号" in calendar.sources[2025]
    # Not published (or not verified) when the data was written: must not be guessed.
    assert not calendar.covers(2027)


def test_friday_afternoon_is_due_monday_same_clock_time() -> None:
    deadline = yellow(shanghai(2026, 11, 27, 15, 0))  # Friday
    assert deadline.rule == RULE_NEXT_WORKING_DAY
    assert deadline.working_due_at == shanghai(2026, 11, 30, 15, 0)  # Monday
    assert deadline.due_at == deadline.working_due_at
    assert deadline.working_due_at.tzinfo == UTC


def test_an_ordinary_weekday_is_due_the_next_day() -> None:
    deadline = yellow(shanghai(2026, 11, 24, 9, 30))  # Tuesday
    assert deadline.working_due_at == shanghai(2026, 11, 25, 9, 30)
    assert deadline.rule == RULE_NEXT_WORKING_DAY


def test_opened_on_a_weekend_is_due_the_next_working_day() -> None:
    assert yellow(shanghai(2026, 11, 28, 22, 0)).working_due_at == shanghai(2026, 11, 30, 22, 0)  # Sat → Mon


def test_spring_festival_eve_is_due_on_the_first_working_day_after_the_nine_day_break() -> None:
    # 2026: break 15-23 Feb (国办发明电〔2025〕7号); the 14th is a makeup working Saturday, the 24th the first day back.
    deadline = yellow(shanghai(2026, 2, 13, 16, 45))  # Friday before the break
    assert deadline.working_due_at == shanghai(2026, 2, 14, 16, 45)  # the makeup Saturday is a working day
    deadline = yellow(shanghai(2026, 2, 14, 16, 45))  # opened on the makeup Saturday, the eve of the break
    assert deadline.rule == RULE_NEXT_WORKING_DAY
    assert deadline.working_due_at == shanghai(2026, 2, 24, 16, 45)


def test_opened_inside_a_holiday_is_due_the_first_working_day_after_it() -> None:
    assert yellow(shanghai(2026, 10, 3, 11, 0)).working_due_at == shanghai(2026, 10, 8, 11, 0)


def test_a_makeup_working_saturday_counts_as_a_working_day() -> None:
    # Friday 9 Oct 2026 → Saturday 10 Oct (调休上班), not Monday 12 Oct.
    assert yellow(shanghai(2026, 10, 9, 10, 0)).working_due_at == shanghai(2026, 10, 10, 10, 0)
    # Saturday 19 Sep 2026 → Sunday 20 Sep (调休上班).
    assert yellow(shanghai(2026, 9, 19, 10, 0)).working_due_at == shanghai(2026, 9, 20, 10, 0)


def test_the_clock_time_is_shanghai_time_whatever_the_zone_of_start() -> None:
    start = datetime(2026, 11, 27, 7, 0, tzinfo=UTC)  # Friday 15:00 in Shanghai
    assert yellow(start).working_due_at == datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
    late = datetime(2026, 11, 27, 17, 30, tzinfo=UTC)  # already Saturday 01:30 in Shanghai
    assert yellow(late).working_due_at == shanghai(2026, 11, 30, 1, 30)


@pytest.mark.parametrize(("level", "seconds"), [("red", 3600), ("orange", 14400)])
@pytest.mark.parametrize("start", [
    shanghai(2026, 2, 14, 16, 45),  # eve of the Spring Festival break
    shanghai(2026, 10, 1, 23, 30),  # National Day, at night
    shanghai(2026, 11, 27, 15, 0),  # Friday afternoon
])
def test_red_and_orange_run_on_the_clock_through_holidays_and_nights(level: str, seconds: int,
                                                                     start: datetime) -> None:
    deadline = ack_deadline(level, start, seconds)
    assert deadline is not None
    assert deadline.rule == RULE_CLOCK_HOURS
    assert deadline.working_due_at == start + timedelta(seconds=seconds)
    assert deadline.due_at == deadline.working_due_at


def test_a_level_without_deadline_has_none() -> None:
    assert ack_deadline("blue", shanghai(2026, 11, 27), None) is None


def test_an_uncovered_year_falls_back_to_weekends_only_with_a_warning_and_a_metric(
        caplog: pytest.LogCaptureFixture) -> None:
    before = fallback_count(2027)
    with caplog.at_level(logging.WARNING, logger="services.alerts.working_time"):
        deadline = yellow(shanghai(2027, 2, 5, 15, 0))  # a Friday; the real 2027 calendar is not known
        again = yellow(shanghai(2027, 2, 8, 15, 0))  # Monday
    assert deadline.rule == RULE_NEXT_WORKING_DAY_WEEKENDS_ONLY
    assert deadline.working_due_at == shanghai(2027, 2, 8, 15, 0)
    assert again.rule == RULE_NEXT_WORKING_DAY_WEEKENDS_ONLY
    assert again.working_due_at == shanghai(2027, 2, 9, 15, 0)
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert len(warnings) == 1, "warned once per year per process"
    assert "2027" in warnings[0].getMessage()
    assert fallback_count(2027) == before + 2, "every fallback deadline is counted"


def test_crossing_into_an_uncovered_year_falls_back_only_for_that_year(caplog: pytest.LogCaptureFixture) -> None:
    before = fallback_count(2027)
    with caplog.at_level(logging.WARNING, logger="services.alerts.working_time"):
        deadline = yellow(shanghai(2026, 12, 31, 15, 0))  # Thursday; 1 Jan 2027 is not in the calendar
    assert deadline.rule == RULE_NEXT_WORKING_DAY_WEEKENDS_ONLY
    assert deadline.working_due_at == shanghai(2027, 1, 1, 15, 0)
    assert fallback_count(2027) == before + 1
    assert any("2027" in record.getMessage() for record in caplog.records)


def test_a_covered_year_neither_warns_nor_counts(caplog: pytest.LogCaptureFixture) -> None:
    before = fallback_count(2026)
    with caplog.at_level(logging.WARNING, logger="services.alerts.working_time"):
        yellow(shanghai(2026, 12, 30, 15, 0))
    assert fallback_count(2026) == before
    assert not [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_scale_multiplies_the_wait_not_the_calendar() -> None:
    start = shanghai(2026, 11, 27, 15, 0)  # Friday: 72 h until Monday 15:00
    deadline = yellow(start, scale=0.002)
    assert deadline.working_due_at == shanghai(2026, 11, 30, 15, 0)
    assert deadline.due_at == start + timedelta(hours=72) * 0.002
    assert scaled_wait(start, deadline.working_due_at, 0.002) == timedelta(seconds=518.4)
    red = ack_deadline("red", start, 3600, scale=0.002)
    assert red is not None
    assert red.due_at == start + timedelta(seconds=7.2)
    assert red.working_due_at == start + timedelta(hours=1)


@pytest.mark.parametrize("scale", [0.0, -1.0])
def test_scale_must_be_positive(scale: float) -> None:
    with pytest.raises(ValueError, match="scale"):
        ack_deadline("red", shanghai(2026, 11, 27), 3600, scale=scale)


def test_start_must_be_timezone_aware() -> None:
    with pytest.raises(ValueError, match="aware"):
        ack_deadline("yellow", datetime(2026, 11, 27, 15, 0), YELLOW)


def test_calendar_data_is_checked_when_parsed() -> None:
    with pytest.raises(ValueError, match="not a weekend day"):
        parse_calendar({"years": {2026: {"source": "x", "holidays": [], "makeup_workdays": [date(2026, 11, 27)]}}})
    with pytest.raises(ValueError, match="no source"):
        parse_calendar({"years": {2026: {"source": " ", "holidays": []}}})
    with pytest.raises(ValueError, match="both off and working"):
        parse_calendar({"years": {2026: {"source": "x",
                                         "holidays": [{"from": "2026-02-14", "to": "2026-02-15"}],
                                         "makeup_workdays": ["2026-02-14"]}}})


def test_next_working_day_on_a_given_calendar() -> None:
    calendar = parse_calendar({"years": {2030: {"source": "test", "holidays": [
        {"from": date(2030, 1, 1), "to": date(2030, 1, 3)}], "makeup_workdays": [date(2030, 1, 5)]}}})
    assert next_working_day(date(2029, 12, 31), calendar) == (date(2030, 1, 4), False)
    assert next_working_day(date(2030, 1, 4), calendar) == (date(2030, 1, 5), False)  # makeup Saturday
    assert next_working_day(date(2030, 1, 5), calendar) == (date(2030, 1, 7), False)


def test_the_2026_calendar_matches_the_notice_day_by_day() -> None:
    # 国办发明电〔2025〕7号, written out: 33 days off, 6 makeup working days.
    calendar = default_calendar()
    off = {day for day in calendar.holidays if day.year == 2026}
    assert len(off) == 33
    assert {day for day in calendar.makeup_workdays if day.year == 2026} == {
        date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9), date(2026, 9, 20),
        date(2026, 10, 10)}
    assert date(2026, 2, 15) in off
    assert date(2026, 2, 23) in off
    assert date(2026, 2, 24) not in off
