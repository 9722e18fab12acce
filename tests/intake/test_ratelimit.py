"""The per-unit token bucket of intake, on a clock the test moves by hand."""

from __future__ import annotations

from services.intake.ratelimit import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_full_bucket_allows_the_limit_then_says_how_long_to_wait() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=3, clock=clock)
    assert [limiter.acquire("unit-a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.acquire("unit-a") == 20  # one token comes back every 60/3 seconds


def test_tokens_come_back_with_time_and_never_above_the_limit() -> None:
    clock = Clock()
    limiter = RateLimiter(per_minute=60, clock=clock)
    for _ in range(60):
        assert limiter.acquire("unit-a") == 0.0
    assert limiter.acquire("unit-a") == 1
    clock.now += 1.0
    assert limiter.acquire("unit-a") == 0.0
    assert limiter.acquire("unit-a") == 1
    clock.now += 3600.0  # an hour idle refills to the limit, not beyond it
    assert [limiter.acquire("unit-a") for _ in range(60)] == [0.0] * 60
    assert limiter.acquire("unit-a") == 1


def test_each_caller_has_its_own_bucket() -> None:
    limiter = RateLimiter(per_minute=1, clock=Clock())
    assert limiter.acquire("unit-a") == 0.0
    assert limiter.acquire("unit-a") == 60
    assert limiter.acquire("unit-b") == 0.0
