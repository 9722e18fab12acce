"""When to retry a failed delivery and when to stop: exponential backoff with jitter, pure functions of their inputs.

API.md "Webhook delivery": failures are retried with exponential backoff (with jitter) for at least 24 h.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta

RETRY_WINDOW = timedelta(hours=24)
"""The contract's minimum: a delivery is never given up before it has been retried for this long."""

GIVE_UP_AFTER = timedelta(hours=48)
"""What we actually do: keep retrying until 48 h after the first attempt, twice the contract's minimum."""


def backoff_cap(attempt: int, *, base: float = 5.0, factor: float = 2.0, max_delay: float = 3600.0) -> float:
    """The most to wait after failed attempt `attempt` (1-based): base * factor^(attempt-1), capped at max_delay."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    try:
        uncapped = base * factor ** (attempt - 1)
    except OverflowError:
        return max_delay
    return min(max_delay, uncapped)


def next_delay(
    attempt: int,
    *,
    base: float = 5.0,
    factor: float = 2.0,
    max_delay: float = 3600.0,
    rng: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based) before the next one.

    "Equal jitter": half the cap is fixed and the other half random, so the delay lies in [cap/2, cap]. It spreads
    retries of many deliveries to one dead receiver apart while still growing with every attempt (full jitter could
    retry immediately).
    """
    cap = backoff_cap(attempt, base=base, factor=factor, max_delay=max_delay)
    return cap / 2 + rng() * cap / 2


def should_give_up(
    first_attempt_at: datetime, now: datetime, attempts: int, *, give_up_after: timedelta = GIVE_UP_AFTER
) -> bool:
    """Whether to stop retrying a delivery and mark it 'failed'.

    Never before RETRY_WINDOW (24 h, the contract's minimum) has passed since the first attempt, whatever the number
    of attempts. We keep retrying until 48 h (`GIVE_UP_AFTER`), i.e. give up after 48 h and mark the delivery
    'failed'. A delivery never attempted is not given up.
    """
    if give_up_after < RETRY_WINDOW:
        raise ValueError("give_up_after must be at least RETRY_WINDOW (24 h)")
    return attempts >= 1 and now - first_attempt_at >= give_up_after
