"""The risk service: scores every report against the Task 7 rubric and publishes the assessment."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from services.risk.api import router
from services.risk.consumer import AssessmentHandler
from services.risk.context import RiskContext
from services.risk.models import SCHEMA
from services.risk.scoring.rubric import Rubric, load_rubric
from services.risk.settings import RiskSettings
from shared.db import create_engine, session_factory
from shared.events import Topic
from shared.http import create_service_app
from shared.kafka import BatchConsumer, EventProducer
from shared.migrations import upgrade_async

HERE = Path(__file__).parent


def rubric_in_force(settings: RiskSettings) -> Rubric:
    """`RUBRIC_PATH` when set, else the shipped `RUBRIC_VERSION`. Raises RubricError naming the bad entry."""
    return load_rubric(settings.rubric_path or settings.rubric_version)


def create_app(settings: RiskSettings | None = None) -> FastAPI:
    settings = settings or RiskSettings()
    rubric = rubric_in_force(settings)  # a bad rubric stops the service before it serves anything

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.run_migrations:
            await upgrade_async(database_url=settings.database_url, migrations_dir=HERE / "migrations",
                                schema=SCHEMA)
        engine = create_engine(settings.database_url, pool_size=settings.database_pool_size)
        sessions = session_factory(engine)
        producer = EventProducer(settings.kafka_bootstrap_servers, client_id="risk",
                                 topic_prefix=settings.kafka_topic_prefix)
        consumer = BatchConsumer(
            name="risk", topics=[Topic.reports, Topic.alerts], group_id="risk",
            bootstrap_servers=settings.kafka_bootstrap_servers, producer=producer,
            handle=AssessmentHandler(sessions=sessions, producer=producer, rubric=rubric),
            topic_prefix=settings.kafka_topic_prefix, max_records=settings.consumer_batch_size,
        )
        context = RiskContext(settings=settings, rubric=rubric, engine=engine, sessions=sessions,
                              producer=producer, consumer=consumer)
        app.state.context = context
        context.workers.start("risk-consumer", consumer)
        try:
            yield
        finally:
            await context.workers.stop()
            await producer.stop()
            await engine.dispose()

    app = create_service_app(
        title="风险评估服务 / Risk",
        description="按江苏省总工会目标任务7评分标准为每份报告评分、定级并说明理由 / Scores every report against the "
        "Task 7 rubric, with its level and reasons.",
        version="1.0.0", lifespan=lifespan,
    )
    app.include_router(router)
    return app
