"""Learns each report's status from the risk and alerts services' topics (never from their tables)."""

from __future__ import annotations

from collections.abc import Sequence

from services.intake import service
from shared.db import SessionFactory, transaction
from shared.events import AlertChanged, ReportAssessed, utcnow
from shared.kafka import Incoming


class StatusHandler:
    def __init__(self, sessions: SessionFactory) -> None:
        self._sessions = sessions

    async def __call__(self, batch: Sequence[Incoming]) -> None:
        events = [item.event for item in batch if isinstance(item.event, ReportAssessed | AlertChanged)]
        if not events:
            return
        async with transaction(self._sessions) as session:
            await service.record_downstream_events(session, events, utcnow())
