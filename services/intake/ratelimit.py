"""The per-unit rate limit of intake: a token bucket per caller, kept in the process (each replica enforces the
limit on its own share)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.refill_per_second = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def acquire(self, caller: str, cost: int = 1) -> float:
        """Take `cost` tokens (one per report); returns 0 when allowed, else the seconds to wait before retrying.
        A cost above the whole capacity can never be met: it waits for a full bucket and is refused again."""
        now = self._clock()
        tokens, updated = self._buckets.get(caller, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - updated) * self.refill_per_second)
        if tokens >= cost:
            self._buckets[caller] = (tokens - cost, now)
            return 0.0
        self._buckets[caller] = (tokens, now)
        return math.ceil((min(cost, self.capacity) - tokens) / self.refill_per_second) or 1
