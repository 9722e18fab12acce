"""The alerts service: routes alerts to union federations and mediation bodies, delivers them for sure, and
escalates when nobody acknowledges in time."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from services.alerts.api import receipt_router, router
from services.alerts.consumer import AssessedHandler, ScreeningHandler
from services.alerts.context import AlertsContext
from services.alerts.lifecycle import Policy
from services.alerts.models import SCHEMA, OutboxMessage
from services.alerts.repository import WAKE_CHANNEL
from services.alerts.routing import load_routing
from services.alerts.sender import DeliverySender
from services.alerts.settings import AlertsSettings
from services.alerts.workers import DeliveryWorker, EscalationWorker, GaugeRefresher
from shared.events import Topic
from shared.http import ReadinessCheck, context_checks, create_service_app
from shared.kafka import BatchConsumer
from shared.outbox import OutboxRelay
from shared.runtime import NotificationListener, service_infrastructure
from shared.webpages import install_static, install_static_directory

HERE = Path(__file__).parent
SENDER_START_SECONDS = 30.0
log = logging.getLogger(__name__)


def create_app(settings: AlertsSettings | None = None) -> FastAPI:
    settings = settings or AlertsSettings()
    policy = Policy.from_settings(settings, load_routing())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_infrastructure(settings, migrations_dir=HERE / "migrations", schema=SCHEMA) as infra:
            sessions, producer = infra.sessions, infra.producer
            relay = OutboxRelay(sessions=sessions, producer=producer, model=OutboxMessage, idle_seconds=0.5,
                                gather_seconds=settings.relay_gather_seconds)
            # The delivery sender: a supervised child process (ALERTS_DELIVERY_PROCESS), or a worker in this one.
            deliveries = DeliverySender(settings) if settings.delivery_process else DeliveryWorker(
                sessions=sessions, settings=settings)

            # Wake-ups from the other replicas (their NOTIFY on the work channel; never this process's own), and
            # this process's NOTIFY to them, sent after the commit that queued the work (not inside it: notifying
            # commits are serialised by PostgreSQL on one global lock).
            def woken_by_another() -> None:
                relay.wake()
                if not isinstance(deliveries, DeliverySender):  # the sender child listens for itself
                    deliveries.wake()

            listener = NotificationListener(settings.database_url, WAKE_CHANNEL, woken_by_another)
            # The relay's rows need another replica only when that one's relay holds the lock (ours stands by).
            relay.on_standby = listener.notify

            def changed(deliveries_left: bool = True) -> None:
                relay.wake()
                # Deliveries to claim: ours and any replica's claim loop may take them. None left: the consumer
                # handed every new delivery to the worker of this process, and nobody else needs a wake-up.
                if deliveries_left:
                    deliveries.wake()
                    listener.notify()

            consumer = BatchConsumer(
                name="alerts", topics=[Topic.assessments], group_id="alerts",
                bootstrap_servers=settings.kafka_bootstrap_servers, producer=producer,
                handle=AssessedHandler(sessions=sessions, policy=policy, on_change=changed,
                                       sender=None if isinstance(deliveries, DeliverySender) else deliveries),
                topic_prefix=settings.kafka_topic_prefix, max_records=settings.consumer_batch_size,
                commit_interval=settings.kafka_commit_interval_seconds,
            )
            screening = BatchConsumer(
                name="alerts-screening", topics=[Topic.screening], group_id="alerts-screening",
                bootstrap_servers=settings.kafka_bootstrap_servers, producer=producer,
                handle=ScreeningHandler(sessions=sessions, policy=policy, on_notice=deliveries.wake),
                topic_prefix=settings.kafka_topic_prefix, commit_interval=settings.kafka_commit_interval_seconds,
            )
            context = AlertsContext(settings=settings, policy=policy, engine=infra.engine, sessions=sessions,
                                    producer=producer, relay=relay,
                                    sender=deliveries if isinstance(deliveries, DeliverySender) else None)
            app.state.context = context
            context.workers.start("alerts-consumer", consumer)
            context.workers.start("alerts-screening-consumer", screening)
            context.workers.start("alerts-outbox-relay", relay)
            context.workers.start("delivery-sender" if context.sender else "delivery-worker", deliveries)
            context.workers.start("escalation-worker", EscalationWorker(
                sessions=sessions, policy=policy, poll_seconds=settings.escalation_poll_seconds,
                on_change=changed))
            context.workers.start("gauges", GaugeRefresher(sessions=sessions))
            context.workers.start("alerts-wake-listener", listener)
            # Ready once the sender is: a spawned interpreter takes a second or more to start (several on a busy
            # machine), and alerts committed meanwhile would wait for it. A sender that does not come up does
            # not keep the API down: its supervisor keeps trying, and /healthz shows it.
            if context.sender is not None and not await context.sender.wait_started(SENDER_START_SECONDS):
                log.warning("the delivery sender process has not started within %.0f s", SENDER_START_SECONDS)
            try:
                yield
            finally:
                await context.workers.stop()

    app = create_service_app(
        title="预警服务 / Alerts",
        description="把预警送达工会和调解组织,超时未确认时逐级上报 / Routes alerts to union federations and mediation "
        "bodies, delivers them for sure, and escalates when nobody acknowledges in time.",
        version="1.0.0", lifespan=lifespan, checks=lambda: _checks(app),
    )
    app.include_router(router)
    app.include_router(receipt_router)

    install_static(app)

    @app.get("/inbox", response_class=HTMLResponse, include_in_schema=False)
    async def inbox() -> HTMLResponse:
        return HTMLResponse((HERE / "pages" / "inbox.html").read_text(encoding="utf-8"))

    # The situation page and what it loads from this service (no CDN): vendored ECharts and Jiangsu's map.
    install_static_directory(app, "/static/vendor", HERE / "static" / "vendor")
    install_static_directory(app, "/static/map", HERE / "static" / "map")

    @app.get("/situation", response_class=HTMLResponse, include_in_schema=False)
    async def situation_page() -> HTMLResponse:
        return HTMLResponse((HERE / "pages" / "situation.html").read_text(encoding="utf-8"))

    return app


def _checks(app: FastAPI) -> Mapping[str, ReadinessCheck]:
    """The dependencies `/healthz` shows: the database and Kafka, and the delivery sender process when there is
    one (informative: `/readyz` asks the database only, since the API works without the sender, which its
    supervisor starts again)."""
    checks = dict(context_checks(app)())
    sender = app.state.context.sender

    if sender is not None:
        async def delivery_sender() -> bool:
            return bool(sender.running)

        checks["delivery_sender"] = delivery_sender
    return checks
