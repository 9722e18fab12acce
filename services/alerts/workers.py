"""Background workers of the alerts service: the delivery worker (a durable queue in the database), the
escalation worker (timers as rows with due times) and the gauges read from the database.

Deliveries are claimed with a lease (`next_attempt_at` moved forward, committed) before they are sent, so a
process that dies mid-send leaves them to be retried when the lease runs out: at least once, and the receiver
recognises a repeat by its stable `X-Delivery-Id`. A success is recorded (in the next batch of results, within
milliseconds) and never repeated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.alerts import channels, service
from services.alerts.lifecycle import Policy
from services.alerts.messages import MessageInput, NoticeInput
from services.alerts.metrics import (
    ALERT_TO_DELIVERY,
    DELIVERIES,
    DELIVERIES_PENDING,
    DELIVERY_ATTEMPT,
    OVERDUE,
    REPORT_TO_DELIVERY,
    UNACKNOWLEDGED,
    WITHOUT_OWNER,
    set_screening_coverage,
)
from services.alerts.models import Delivery, DeliveryKind
from services.alerts.settings import AlertsSettings
from services.alerts.targets import CachedResolver, Resolver, check_target, system_resolver
from shared.db import SessionFactory, transaction
from shared.events import RiskLevel, utcnow
from shared.logging import trace_context
from shared.runtime import PollingWorker

log = logging.getLogger(__name__)

CHANNELS = ("webhook", "email", "wecom", "dingtalk")
OUTCOMES = ("delivered", "retrying", "failed", "abandoned", "cancelled")


def initialise_delivery_metrics() -> None:
    """Every channel × outcome series of `alerts_deliveries_total` exists (at zero) from the start."""
    for channel in CHANNELS:
        for outcome in OUTCOMES:
            DELIVERIES.labels(channel=channel, outcome=outcome)


class _Loop(PollingWorker):
    """The alerts workers poll the database: after a failure they retry within a few poll intervals."""

    def retry_delay(self, failures: int) -> float:
        return min(self._poll_seconds * 4, 5.0)


class DeliveryWorker:
    """Sends deliveries continuously: a claim loop keeps up to `IN_HAND_PER_REQUEST` × `delivery_concurrency`
    deliveries in hand, each sent as its own task (at most `delivery_concurrency` requests in flight, at most
    `delivery_target_concurrency` to one channel of one body and `delivery_host_concurrency` to one host:port), and a
    writer stores their results many to a transaction. A slow or hanging receiver holds only its own slots and a
    bounded share of the deliveries in hand (`delivery_target_queue` per slot), never the others'.

    Woken at once when deliveries are committed (`wake()`: the consumer's commit in this process, NOTIFY from the
    others); otherwise it looks for retries falling due every `delivery_poll_seconds`.
    """

    def __init__(self, *, sessions: SessionFactory, settings: AlertsSettings) -> None:
        self._sessions = sessions
        self._settings = settings
        self._client: aiohttp.ClientSession | None = None
        self._resolver = CachedResolver()  # the send-time target check's resolutions, reused for a short while
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._held = 0  # claimed and not yet recorded
        self._in_hand: set[str] = set()  # their ids: a lease that ran out meanwhile must not send one twice here
        self._claim_was_full = False
        self._request_slots = asyncio.Semaphore(settings.delivery_concurrency)
        self._target_slots: dict[str, asyncio.Semaphore] = {}
        self._host_slots: dict[str, asyncio.Semaphore] = {}
        self._target_held: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[None]] = set()
        self._results: asyncio.Queue[_Finished] = asyncio.Queue()
        self._cipher = settings.channel_cipher()
        initialise_delivery_metrics()

    def wake(self) -> None:
        self._wake.set()

    def lease(self, now: datetime) -> service.SendLease | None:
        """Room for deliveries created by this process's consumer, to be sent without a claim (`take` them after
        the commit); None while stopping or full."""
        room = self._settings.delivery_concurrency * IN_HAND_PER_REQUEST - self._held
        if room <= 0 or self._client is None or self._stopping.is_set():
            return None
        return service.SendLease(room=room, until=now + timedelta(seconds=self._settings.delivery_lease_seconds),
                                 cipher=self._cipher)

    def take(self, claimed: Sequence[service.Claimed]) -> None:
        """Send deliveries leased to this process by a committed transaction (`lease`). Stopping meanwhile, they
        are left to their lease (they run out, and a claim sends them)."""
        if self._stopping.is_set():
            return
        for item in claimed:
            self._dispatch(item)

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()

    async def run(self) -> None:
        limit = self._settings.delivery_concurrency
        async with channels.new_http_client(limit=limit, allow_private=self._settings.private_targets_allowed,
                                            timeout=self._settings.delivery_timeout_seconds) as client:
            self._client = client
            writer = asyncio.create_task(self._write_results(), name="delivery-results")
            try:
                await self._claim_loop()
            finally:
                await self._finish(writer)

    # --- claiming ------------------------------------------------------------------------------------------------

    async def _claim_loop(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            free = self._settings.delivery_concurrency * IN_HAND_PER_REQUEST - self._held
            if free <= 0:
                self._claim_was_full = True  # the writer wakes us when a slot frees
                await self._pause(self._settings.delivery_poll_seconds)
                continue
            self._wake.clear()  # before claiming: a wake-up that comes during the claim is not lost
            try:
                claimed, cancelled = await self._claim(free)
            except Exception as error:
                failures += 1
                delay = min(self._settings.delivery_poll_seconds * 2**failures, 5.0)
                log.warning("claiming deliveries failed (%s); retrying in %.1f s", error, delay, exc_info=True)
                await self._pause(delay)
                continue
            failures = 0
            for delivery in cancelled:
                DELIVERIES.labels(channel=delivery.channel_type, outcome="cancelled").inc()
            for item in claimed:
                self._dispatch(item)
            self._claim_was_full = len(claimed) + len(cancelled) >= free
            if not self._claim_was_full:
                await self._pause(self._settings.delivery_poll_seconds)

    async def _claim(self, limit: int) -> tuple[list[service.Claimed], list[Delivery]]:
        async with transaction(self._sessions) as session:
            return await service.claim_for_sending(session, utcnow(), limit, self._settings)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    def _dispatch(self, item: service.Claimed) -> None:
        """Start sending one claimed delivery, or hand it back at once when its channel already holds its share."""
        if item.delivery.id in self._in_hand:
            return  # re-claimed after its lease ran out while this process still sends or records it
        self._in_hand.add(item.delivery.id)
        target = _target_of(item)
        self._held += 1
        self._target_held[target] += 1
        claimed_at = time.monotonic()
        if self._target_held[target] > (self._settings.delivery_target_concurrency
                                        * self._settings.delivery_target_queue):
            self._results.put_nowait(_Finished(item, target, None, claimed_at))
            return
        task = asyncio.create_task(self._deliver(item, target, claimed_at))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- sending -------------------------------------------------------------------------------------------------

    async def _deliver(self, item: service.Claimed, target: str, claimed_at: float) -> None:
        target_slots = self._target_slots.setdefault(
            target, asyncio.Semaphore(self._settings.delivery_target_concurrency))
        host = _host_of(item.channel)
        host_slots = self._host_slots.setdefault(host, asyncio.Semaphore(self._settings.delivery_host_concurrency))
        result: channels.DeliveryResult | None = None
        async with target_slots, host_slots, self._request_slots:  # always in this order: no waiting in a cycle
            # Waiting for the host must not eat the lease (another replica could then send it too): past half of
            # it, the delivery goes back to the queue unsent.
            if time.monotonic() - claimed_at < self._settings.delivery_lease_seconds / 2:
                result = await self._attempt(item)
        self._results.put_nowait(_Finished(item, target, result, claimed_at))

    async def _attempt(self, item: service.Claimed) -> channels.DeliveryResult:
        delivery = item.delivery
        # A webhook sends the stored bytes as they are: only the trace id is read from them. The robots and e-mail
        # render texts from the whole payload.
        payload = None if isinstance(item.channel, channels.WebhookChannel) else message_input(delivery)
        with trace_context(trace_of(payload) if payload is not None else trace_of_payload(delivery)):
            started = time.monotonic()
            try:
                result = await self._send(delivery, item.channel, payload)
            except Exception as error:  # a bug in one channel must not stop the others
                log.exception("delivery %s raised", delivery.id)
                result = channels.DeliveryResult(ok=False, status=None, error=f"{type(error).__name__}")
            DELIVERY_ATTEMPT.labels(channel=delivery.channel_type).observe(time.monotonic() - started)
            if not result.ok:
                log.warning("delivery %s to %s failed (attempt %d): %s", delivery.id, delivery.channel_type,
                            delivery.attempts + 1, result.error or result.status)
            return result

    async def _send(self, delivery: Delivery, config: channels.ChannelConfig,
                    payload: MessageInput | NoticeInput | None) -> channels.DeliveryResult:
        """Send through the channel as its body has it now (read when claimed: `service.channel_for`); `payload`
        (the texts' input) may be None for a webhook only."""
        assert self._client is not None
        refusal = await target_refusal(config, self._settings, self._resolver)
        if refusal is not None:
            return channels.DeliveryResult(ok=False, status=None, error=refusal, permanent=True)
        timeout = self._settings.delivery_timeout_seconds
        if isinstance(config, channels.WebhookChannel):
            return await channels.send_webhook(
                self._client, config.url, config.secret, delivery.payload.encode(),
                alert_id=delivery.alert_id, delivery_id=delivery.id, timeout=timeout,
            )
        texts = payload if payload is not None else message_input(delivery)
        match config:
            case channels.WecomChannel():
                return await channels.send_wecom(self._client, config.url, texts, timeout=timeout)
            case channels.DingtalkChannel():
                return await channels.send_dingtalk(self._client, config.url, config.secret, texts, timeout=timeout)
            case channels.EmailChannel():
                return await channels.send_email(
                    self._settings.smtp_host, self._settings.smtp_port, self._settings.smtp_from, config.address,
                    texts, timeout=timeout,
                )
        return channels.DeliveryResult(ok=False, status=None, error=f"unknown channel {delivery.channel_type}")

    # --- recording -----------------------------------------------------------------------------------------------

    async def _write_results(self) -> None:
        """Store finished attempts, as many per transaction as have finished meanwhile; retried until stored (a
        process that dies first leaves them leased: the lease runs out and they are sent again, same id)."""
        while True:
            batch = [await self._results.get()]
            while len(batch) < RESULTS_PER_TRANSACTION and not self._results.empty():
                batch.append(self._results.get_nowait())
            await self._record(batch)
            for _ in batch:
                self._results.task_done()

    async def _record(self, batch: list[_Finished]) -> None:
        now = utcnow()
        attempts: list[service.Attempted] = []
        deferred: list[Delivery] = []
        for finished in batch:
            delivery = finished.item.delivery
            if finished.result is None:
                deferred.append(delivery)
                continue
            outcome = service.attempt_outcome(finished.result, delivery.created_at, delivery.attempts + 1, now,
                                              self._settings)
            attempts.append(service.Attempted(delivery, finished.result, outcome, now))
        defer_until = now + timedelta(seconds=self._settings.delivery_busy_seconds)
        failures = 0
        while True:
            try:
                async with transaction(self._sessions) as session:
                    firsts = await service.record_attempts(session, attempts, deferred, defer_until, now)
                break
            except Exception as error:
                failures += 1
                log.warning("recording %d delivery results failed (%s); retrying", len(batch), error, exc_info=True)
                await asyncio.sleep(min(0.5 * 2**failures, 5.0))
        for first in firsts:
            REPORT_TO_DELIVERY.observe(max((now - first.accepted_at).total_seconds(), 0.0))
            ALERT_TO_DELIVERY.observe(max((now - first.opened_at).total_seconds(), 0.0))
        for attempt in attempts:
            DELIVERIES.labels(channel=attempt.delivery.channel_type, outcome=attempt.outcome.name).inc()
        for finished in batch:
            self._in_hand.discard(finished.item.delivery.id)
            self._held -= 1
            self._target_held[finished.target] -= 1
            if not self._target_held[finished.target]:
                del self._target_held[finished.target]
                self._target_slots.pop(finished.target, None)  # nothing holds it: no task waits on it
        if self._claim_was_full or deferred:
            self._wake.set()

    async def _finish(self, writer: asyncio.Task[None]) -> None:
        """On stop: let sends in flight finish for a moment, store what finished, leave the rest to their leases."""
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=STOP_GRACE_SECONDS)
            for task in pending:
                task.cancel()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._results.join(), STOP_GRACE_SECONDS)
        writer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await writer


RESULTS_PER_TRANSACTION = 200
IN_HAND_PER_REQUEST = 4
"""Deliveries in hand (claimed: sending, or waiting for a slot of their channel or host) per request slot."""
STOP_GRACE_SECONDS = 3.0


@dataclass(frozen=True)
class _Finished:
    """A claimed delivery done with: its result, or None when it goes back to the queue unsent."""

    item: service.Claimed
    target: str
    result: channels.DeliveryResult | None
    claimed_at: float


def _target_of(item: service.Claimed) -> str:
    """One channel of one body: the unit whose slowness must stay its own."""
    return f"{item.delivery.body_id}/{item.delivery.channel_index}/{item.delivery.channel_type}"


def _host_of(config: channels.ChannelConfig) -> str:
    """The target a delivery's request slots are counted against: host:port of the URL, the SMTP relay for e-mail."""
    if isinstance(config, channels.EmailChannel):
        return "smtp"
    parts = urlsplit(config.url)
    return f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"


async def target_refusal(config: channels.ChannelConfig, settings: AlertsSettings,
                         resolver: Resolver = system_resolver) -> str | None:
    """Why this channel's target must not be contacted now (None: it may); a refusal fails the delivery at once.
    The one send-time check of a target: webhook and robot URLs are resolved again now, so that a name that moved
    to a private address since the body was saved is caught (`targets.check_target`). The delivery worker passes a
    `CachedResolver`: a resolution is reused for `RESOLUTION_TTL_SECONDS` at most."""
    if isinstance(config, channels.EmailChannel):
        return None
    return await check_target(config.url, allow_private=settings.private_targets_allowed, channel_type=config.type,
                              resolver=resolver)


def message_input(delivery: Delivery) -> MessageInput | NoticeInput:
    """What the e-mail and robot texts of a delivery are made of: an alert's webhook payload, or a notice's."""
    model: type[MessageInput] | type[NoticeInput] = (
        NoticeInput if delivery.kind == DeliveryKind.screening_notice.value else MessageInput)
    try:
        return model.model_validate_json(delivery.payload)
    except ValidationError:  # never written by this service; a webhook still gets the bytes as they are
        return model()


class _TraceAlert(BaseModel):
    model_config = ConfigDict(extra="ignore")
    report_ids: list[str] = Field(default_factory=list)


class _TraceRound(BaseModel):
    model_config = ConfigDict(extra="ignore")
    round_id: str | None = None


class _TraceFields(BaseModel):
    """The two fields of a payload a trace id comes from; everything else is skipped, not validated (validating a
    whole `MessageInput` was ~0.06 ms per webhook, a fifth of the send's CPU once aiohttp sends)."""

    model_config = ConfigDict(extra="ignore")
    alert: _TraceAlert | None = None
    round: _TraceRound | None = None


def trace_of_payload(delivery: Delivery) -> str | None:
    """`trace_of(message_input(delivery))` without validating the whole payload."""
    try:
        fields = _TraceFields.model_validate_json(delivery.payload)
    except ValidationError:
        return None
    if delivery.kind == DeliveryKind.screening_notice.value:
        return fields.round.round_id if fields.round is not None else None
    return fields.alert.report_ids[0] if fields.alert is not None and fields.alert.report_ids else None


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
            self._on_change()  # after the commit: this process's workers, and the other replicas' (NOTIFY)
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
