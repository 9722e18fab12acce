"""Background workers of the alerts service: the delivery worker (a durable queue in the database), the
escalation worker (timers as rows with due times) and the gauges read from the database.

Deliveries are claimed with a lease (`next_attempt_at` moved forward, committed) before they are sent, so a
process that dies mid-send leaves them to be retried when the lease runs out: at least once, and the receiver
recognises a repeat by its stable `X-Delivery-Id`. A success is recorded at once and never repeated.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import httpx
from pydantic import ValidationError

from services.alerts import channels, service
from services.alerts.channel_secrets import unseal_channel
from services.alerts.lifecycle import Policy
from services.alerts.messages import MessageInput, NoticeInput
from services.alerts.metrics import (
    DELIVERIES,
    DELIVERIES_PENDING,
    OVERDUE,
    REPORT_TO_DELIVERY,
    UNACKNOWLEDGED,
    WITHOUT_OWNER,
    set_screening_coverage,
)
from services.alerts.models import Delivery, DeliveryKind
from services.alerts.settings import AlertsSettings
from shared.db import SessionFactory, transaction
from shared.events import RiskLevel, utcnow
from shared.logging import trace_context
from shared.runtime import PollingWorker

log = logging.getLogger(__name__)

CHANNELS = ("webhook", "email", "wecom", "dingtalk")
OUTCOMES = ("delivered", "retrying", "abandoned")


class _Loop(PollingWorker):
    """The alerts workers poll the database: after a failure they retry within a few poll intervals."""

    def retry_delay(self, failures: int) -> float:
        return min(self._poll_seconds * 4, 5.0)


class DeliveryWorker(_Loop):
    def __init__(self, *, sessions: SessionFactory, settings: AlertsSettings) -> None:
        super().__init__(settings.delivery_poll_seconds)
        self._sessions = sessions
        self._settings = settings
        self._cipher = settings.channel_cipher()
        self._client: httpx.AsyncClient | None = None
        for channel in CHANNELS:
            for outcome in OUTCOMES:
                DELIVERIES.labels(channel=channel, outcome=outcome)

    async def run(self) -> None:
        async with httpx.AsyncClient(follow_redirects=False) as client:
            self._client = client
            await super().run()

    async def tick(self) -> bool:
        claimed = await self._claim()
        if claimed:
            await asyncio.gather(*(self._attempt(delivery) for delivery in claimed))
        return len(claimed) == self._settings.delivery_concurrency

    async def _claim(self) -> list[Delivery]:
        async with transaction(self._sessions) as session:
            return await service.claim_deliveries(session, utcnow(), self._settings)

    async def _attempt(self, delivery: Delivery) -> None:
        payload = message_input(delivery)
        with trace_context(trace_of(payload)):
            try:
                result = await self._send(delivery, payload)
            except Exception as error:  # a bug in one channel must not stop the others
                log.exception("delivery %s raised", delivery.id)
                result = channels.DeliveryResult(ok=False, status=None, error=f"{type(error).__name__}")
            await self._record(delivery, result)

    async def _send(self, delivery: Delivery, payload: MessageInput | NoticeInput) -> channels.DeliveryResult:
        assert self._client is not None
        # Stored channels carry their secret encrypted (channel_secrets); the sender needs it in plain text.
        config = channels.channel_config_adapter.validate_python(unseal_channel(delivery.channel, self._cipher))
        timeout = self._settings.delivery_timeout_seconds
        match config:
            case channels.WebhookChannel():
                return await channels.send_webhook(
                    self._client, config.url, config.secret, delivery.payload.encode(),
                    alert_id=delivery.alert_id, delivery_id=delivery.id, timeout=timeout,
                )
            case channels.WecomChannel():
                return await channels.send_wecom(self._client, config.url, payload, timeout=timeout)
            case channels.DingtalkChannel():
                return await channels.send_dingtalk(self._client, config.url, config.secret, payload, timeout=timeout)
            case channels.EmailChannel():
                return await channels.send_email(
                    self._settings.smtp_host, self._settings.smtp_port, self._settings.smtp_from, config.address,
                    payload, timeout=timeout,
                )
        return channels.DeliveryResult(ok=False, status=None, error=f"unknown channel {delivery.channel_type}")

    async def _record(self, delivery: Delivery, result: channels.DeliveryResult) -> None:
        now = utcnow()
        outcome = service.attempt_outcome(result, delivery.created_at, delivery.attempts + 1, now, self._settings)
        async with transaction(self._sessions) as session:
            accepted_at = await service.record_attempt(session, delivery, result, outcome, now)
        if accepted_at is not None:
            REPORT_TO_DELIVERY.observe(max((now - accepted_at).total_seconds(), 0.0))
        DELIVERIES.labels(channel=delivery.channel_type, outcome=outcome.name).inc()
        if not result.ok:
            log.warning("delivery %s to %s failed (attempt %d): %s", delivery.id, delivery.channel_type,
                        delivery.attempts + 1, result.error or result.status)


def message_input(delivery: Delivery) -> MessageInput | NoticeInput:
    """What the e-mail and robot texts of a delivery are made of: an alert's webhook payload, or a notice's."""
    model: type[MessageInput] | type[NoticeInput] = (
        NoticeInput if delivery.kind == DeliveryKind.screening_notice.value else MessageInput)
    try:
        return model.model_validate_json(delivery.payload)
    except ValidationError:  # never written by this service; a webhook still gets the bytes as they are
        return model()


def trace_of(payload: MessageInput | NoticeInput) -> str | None:
    """The trace id of the chain a delivery belongs to: the alert's first report, or the screening round."""
    if isinstance(payload, NoticeInput):
        return payload.round.round_id
    return payload.alert.report_ids[0] if payload.alert.report_ids else None


class EscalationWorker(_Loop):
    def __init__(self, *, sessions: SessionFactory, policy: Policy, poll_seconds: float,
                 on_change: Callable[[], None]) -> None:
        super().__init__(poll_seconds)
        self._sessions = sessions
        self._policy = policy
        self._on_change = on_change

    async def tick(self) -> bool:
        async with transaction(self._sessions) as session:
            handled = await service.escalate_due(session, self._policy, utcnow())
        if handled:
            self._on_change()
        return handled > 0


class GaugeRefresher(_Loop):
    """Unacknowledged and overdue alerts by level, pending deliveries, alerts without an owner by level and
    screening coverage by city: read from the database, so every replica reports the same numbers (the alert rules
    take the max across replicas)."""

    def __init__(self, *, sessions: SessionFactory, poll_seconds: float = 5.0) -> None:
        super().__init__(poll_seconds)
        self._sessions = sessions

    async def tick(self) -> bool:
        async with transaction(self._sessions) as session:
            open_by_level, overdue_by_level, pending = await service.gauges(session, utcnow())
            without_owner, coverage = await service.casework_gauges(session, utcnow())
        for level in RiskLevel:
            UNACKNOWLEDGED.labels(level=level.value).set(open_by_level.get(level.value, 0))
            OVERDUE.labels(level=level.value).set(overdue_by_level.get(level.value, 0))
            WITHOUT_OWNER.labels(level=level.value).set(without_owner.get(level.value, 0))
        DELIVERIES_PENDING.set(pending)
        set_screening_coverage(coverage)
        return False
