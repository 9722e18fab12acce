"""Retry timing of deliveries: exponential backoff with equal jitter, and when to give up."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from services.alerts.backoff import GIVE_UP_AFTER, RETRY_WINDOW, backoff_cap, next_delay, should_give_up

pytestmark = pytest.mark.unit

START = datetime(2025, 1, 20, 8, 0, tzinfo=UTC)


def test_cap_grows_monotonically_until_max_delay() -> None:
    caps = [backoff_cap(attempt) for attempt in range(1, 40)]
    assert caps[:4] == [5.0, 10.0, 20.0, 40.0]
    assert all(later >= earlier for earlier, later in itertools.pairwise(caps))
    assert max(caps) == 3600.0
    assert caps[-1] == 3600.0


def test_huge_attempt_numbers_stay_capped() -> None:
    assert next_delay(100_000, rng=lambda: 1.0) == 3600.0


@pytest.mark.parametrize("attempt", [1, 2, 5, 10, 30])
def test_jitter_keeps_the_delay_between_half_the_cap_and_the_cap(attempt: int) -> None:
    cap = backoff_cap(attempt)
    assert next_delay(attempt, rng=lambda: 0.0) == cap / 2
    assert next_delay(attempt, rng=lambda: 0.999999) <= cap
    for _ in range(200):
        assert cap / 2 <= next_delay(attempt) <= cap


def test_jitter_spreads_delays() -> None:
    assert len({next_delay(6) for _ in range(50)}) > 1


def test_parameters_are_honoured() -> None:
    assert next_delay(3, base=1.0, factor=3.0, max_delay=100.0, rng=lambda: 1.0) == 9.0
    assert next_delay(10, base=1.0, factor=3.0, max_delay=100.0, rng=lambda: 1.0) == 100.0


def test_attempts_count_from_one() -> None:
    with pytest.raises(ValueError, match="from 1"):
        next_delay(0)


def test_retrying_lasts_at_least_the_contract_window() -> None:
    assert RETRY_WINDOW == timedelta(hours=24)
    assert GIVE_UP_AFTER >= RETRY_WINDOW


@pytest.mark.parametrize(
    ("elapsed", "attempts", "give_up"),
    [
        (timedelta(0), 1, False),
        (timedelta(hours=23, minutes=59), 10_000, False),
        (timedelta(hours=24), 50, False),
        (timedelta(hours=47, minutes=59), 50, False),
        (timedelta(hours=48), 50, True),
        (timedelta(days=5), 1, True),
        (timedelta(days=5), 0, False),
    ],
)
def test_give_up_only_after_48_hours(elapsed: timedelta, attempts: int, give_up: bool) -> None:
    assert should_give_up(START, START + elapsed, attempts) is give_up


def test_give_up_window_cannot_be_set_below_24_hours() -> None:
    with pytest.raises(ValueError, match="RETRY_WINDOW"):
        should_give_up(START, START + timedelta(hours=30), 5, give_up_after=timedelta(hours=12))
    assert should_give_up(START, START + timedelta(hours=24), 5, give_up_after=RETRY_WINDOW) is True
