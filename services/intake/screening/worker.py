"""The due notice of screening rounds, and the coverage gauges: a small polling worker in every intake replica.

The timer is a row (`screening_rounds.due_event_at`): a round past `due_at` is claimed by one transaction, which
also writes its `screening.round_due` events to the outbox, so the notice goes out exactly once however many
replicas poll.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from services.intake.screening import service
from services.intake.screening.metrics import SCREENING_DUE_NOTICES, set_coverage
from shared.db import SessionFactory, transaction
from shared.events import utcnow
from shared.runtime import PollingWorker

POLL_SECONDS = 1.0  # one indexed query per second and replica; a due notice is never more than ~1 s late
COVERAGE_SECONDS = 30.0  # rounds open and close with time: recount at least this often
ROUNDS_PER_TICK = 20


class ScreeningWorker(PollingWorker):
    def __init__(
        self, *, sessions: SessionFactory, on_outbox: Callable[[], None], poll_seconds: float = POLL_SECONDS,
        coverage_seconds: float = COVERAGE_SECONDS,
    ) -> None:
        super().__init__(poll_seconds)
        self._sessions = sessions
        self._on_outbox = on_outbox
        self._coverage_seconds = coverage_seconds
        self._coverage_at: float | None = None

    def coverage_changed(self) -> None:
        """A round or an answer was stored here: recount the coverage gauges now rather than at the next period."""
        self._coverage_at = None
        self.wake()

    async def tick(self) -> bool:
        now = utcnow()
        async with transaction(self._sessions) as session:
            written = await service.write_due_notices(session, now=now, limit=ROUNDS_PER_TICK)
        if written.rounds:
            SCREENING_DUE_NOTICES.inc(written.events)
            self._on_outbox()
            self._coverage_at = None
        if self._coverage_at is None or time.monotonic() - self._coverage_at >= self._coverage_seconds:
            async with transaction(self._sessions) as session:
                cities = await service.coverage_by_city(session, now=now)
            set_coverage(cities)
            self._coverage_at = time.monotonic()
        return written.rounds >= ROUNDS_PER_TICK
