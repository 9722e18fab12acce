"""The intake service: the reporting API and web form for grassroots units, with a durable outbox."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from cryptography.fernet import Fernet
from fastapi import FastAPI
from fastapi.responses import HTMLResponse

from services.intake import fastpath, service
from services.intake.api import router
from services.intake.consumer import StatusHandler
from services.intake.context import IntakeContext
from services.intake.metrics import count_rejected_submission, count_too_large_submission
from services.intake.models import SCHEMA
from services.intake.ratelimit import RateLimiter
from services.intake.relay import intake_relay
from services.intake.screening.api import router as screening_router
from services.intake.settings import IntakeSettings
from services.intake.signin.api import router as signin_router
from services.intake.writer import GroupCommitWriter
from shared.events import Topic
from shared.http import create_service_app, on_validation_error
from shared.kafka import BatchConsumer
from shared.logging import configure_logging
from shared.outbox import outbox_channel
from shared.runtime import NotificationListener, service_infrastructure, tune_garbage_collector
from shared.webpages import install_static

HERE = Path(__file__).parent


def create_app(settings: IntakeSettings | None = None) -> FastAPI:
    settings = settings or IntakeSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.configure_key_cache(settings.key_cache_seconds)
        async with service_infrastructure(settings, migrations_dir=HERE / "migrations", schema=SCHEMA) as infra:
            sessions, producer = infra.sessions, infra.producer
            relay = intake_relay(sessions=sessions, producer=producer, batch_size=settings.relay_batch_size,
                                 idle_seconds=settings.relay_idle_seconds,
                                 linger_seconds=settings.relay_linger_seconds, source=settings.service_name)
            outbox_listener = NotificationListener(settings.database_url, outbox_channel(SCHEMA), relay.wake)
            # The other replicas hear of rows committed here only when their relay holds the lock (ours stands by):
            # otherwise ours publishes them, and a NOTIFY per commit would only cost every replica a wake-up.
            relay.on_standby = outbox_listener.notify

            def outbox_committed() -> None:
                relay.wake()

            writer = GroupCommitWriter(infra.engine, connections=settings.writer_connections,
                                       linger_seconds=settings.writer_linger_seconds,
                                       on_committed=outbox_committed)
            context = IntakeContext(
                settings=settings, engine=infra.engine, sessions=sessions, producer=producer,
                relay=relay,
                status_consumer=BatchConsumer(
                    name="intake-status", topics=[Topic.assessments, Topic.alerts], group_id="intake-status",
                    bootstrap_servers=settings.kafka_bootstrap_servers, producer=producer,
                    handle=StatusHandler(sessions), topic_prefix=settings.kafka_topic_prefix,
                    commit_interval=settings.kafka_commit_interval_seconds,
                ),
                cipher=Fernet(settings.effective_contact_key.encode()),
                rate_limiter=RateLimiter(settings.unit_rate_limit),
                outbox_listener=outbox_listener, writer=writer,
            )
            app.state.context = context
            # On shutdown it commits what is queued, then stops taking submissions (503 after that).
            context.workers.start("group-commit-writer", writer)
            context.workers.start("outbox-relay", context.relay)
            context.workers.start("outbox-listener", context.outbox_listener)
            context.workers.start("status-consumer", context.status_consumer)
            try:
                yield
            finally:
                await context.workers.stop()

    app = create_service_app(
        title="上报受理服务 / Intake",
        description="基层工会上报劳动争议、欠薪和职工队伍稳定风险 / Reports of labour disputes, wage arrears and "
        "workforce-stability risks from grassroots union units.",
        version="1.0.0", lifespan=lifespan,
        body_limits={"/v1/reports/batch": service.BATCH_MAX_BYTES}, on_too_large=count_too_large_submission,
    )
    on_validation_error(app, count_rejected_submission)
    app.include_router(router)
    app.include_router(screening_router)
    app.include_router(signin_router)

    install_static(app)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def form() -> HTMLResponse:
        return HTMLResponse((HERE / "pages" / "index.html").read_text(encoding="utf-8"))

    # The ordinary `POST /v1/reports` skips FastAPI's per-request machinery (`services.intake.fastpath`).
    fastpath.install(app)
    return app


def worker_app() -> FastAPI:
    """The app of one uvicorn worker process when `INTAKE_WORKERS` > 1 (settings and logging from the environment)."""
    settings = IntakeSettings()
    configure_logging(settings.service_name, settings.log_level)
    app = create_app(settings)
    tune_garbage_collector(settings.gc_thresholds)
    return app
