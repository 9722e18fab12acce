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
from shared.events import Topic
from shared.http import create_service_app
from shared.kafka import BatchConsumer
from shared.runtime import service_infrastructure

HERE = Path(__file__).parent


def rubric_in_force(settings: RiskSettings) -> Rubric:
    """`RUBRIC_PATH` when set, else the shipped `RUBRIC_VERSION`. Raises RubricError naming the bad entry."""
    return load_rubric(settings.rubric_path or settings.rubric_version)


def create_app(settings: RiskSettings | None = None) -> FastAPI:
    settings = settings or RiskSettings()
    rubric = rubric_in_force(settings)  # a bad rubric stops the service before it serves anything

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with service_infrastructure(settings, migrations_dir=HERE / "migrations", schema=SCHEMA) as infra:
            consumer = BatchConsumer(
                name="risk", topics=[Topic.reports, Topic.alerts], group_id="risk",
                bootstrap_servers=settings.kafka_bootstrap_servers, producer=infra.producer,
                handle=AssessmentHandler(sessions=infra.sessions, producer=infra.producer, rubric=rubric),
                topic_prefix=settings.kafka_topic_prefix, max_records=settings.consumer_batch_size,
                pipelined=settings.consumer_pipelined, commit_interval=settings.kafka_commit_interval_seconds,
            )
            context = RiskContext(settings=settings, rubric=rubric, engine=infra.engine, sessions=infra.sessions,
                                  producer=infra.producer, consumer=consumer)
            app.state.context = context
            context.workers.start("risk-consumer", consumer)
            try:
                yield
            finally:
                await context.workers.stop()

    app = create_service_app(
        title="风险评估服务 / Risk",
        description="按江苏省总工会目标任务7评分标准为每份报告评分、定级并说明理由 / Scores every report against the "
        "Task 7 rubric, with its level and reasons.",
        version="1.0.0", lifespan=lifespan,
    )
    app.include_router(router)
    return app
