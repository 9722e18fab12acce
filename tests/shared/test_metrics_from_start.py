"""Metrics exist from the start: a fresh process exposes every labelled counter of shared/ and intake's rejection
reasons at 0 (so that `rate()`, `increase()` and the rules see the first event), and every 422 of a report
submission counts as a rejection for `validation`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from services.intake.metrics import REJECTION_REASONS
from shared.http import create_service_app
from tests.factories import make_report_body
from tests.intake.conftest import intake_settings, running_intake
from tests.support.processes import REPO

FRESH_PROCESS = """
import asyncio
from prometheus_client import generate_latest
from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.events import Topic
from shared.kafka import BatchConsumer, EventProducer
import shared.dlq  # noqa: F401  (its counters)

app = create_app(IntakeSettings(environment="development"))
BatchConsumer(name="t", topics=[Topic.reports, Topic.assessments], group_id="t", bootstrap_servers="127.0.0.1:1",
              producer=EventProducer("127.0.0.1:1", client_id="t"), handle=None)


async def lifespan_through_the_middleware() -> None:
    messages = iter([{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])

    async def receive():
        return next(messages)

    async def send(message):
        if message["type"].endswith("failed"):
            raise RuntimeError(message)

    # The app's own lifespan needs a database; the middleware's part runs before it and is what this checks.
    app.router.lifespan_context = _noop
    await app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, receive, send)


from contextlib import asynccontextmanager


@asynccontextmanager
async def _noop(_app):
    yield


asyncio.run(lifespan_through_the_middleware())
print(generate_latest().decode())
"""


def _samples(exposition: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        for sample in family.samples
    }


@pytest.fixture(scope="module")
def fresh() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS], cwd=REPO, capture_output=True, text=True,
                            timeout=60, check=False, env={"ENVIRONMENT": "development", "PATH": ""})
    assert result.returncode == 0, result.stderr[-3000:]
    return _samples(result.stdout)


def _value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


@pytest.mark.unit
@pytest.mark.parametrize("reason", REJECTION_REASONS)
def test_intake_rejection_reasons_start_at_zero(fresh: dict[tuple[str, frozenset[tuple[str, str]]], float],
                                                reason: str) -> None:
    assert _value(fresh, "intake_reports_rejected_total", reason=reason) == 0


@pytest.mark.unit
@pytest.mark.parametrize("topic", ["reports.v1", "assessments.v1"])
def test_consumer_counters_start_at_zero(fresh: dict[tuple[str, frozenset[tuple[str, str]]], float],
                                         topic: str) -> None:
    assert _value(fresh, "kafka_dlq_messages_total", topic=topic) == 0
    for outcome in ("processed", "dead_lettered"):
        assert _value(fresh, "kafka_messages_consumed_total", topic=topic, outcome=outcome) == 0
    assert _value(fresh, "kafka_batch_processing_duration_seconds_count", topic=topic) == 0
    for produced in (topic, f"{topic}.dlq"):
        assert _value(fresh, "kafka_messages_produced_total", topic=produced) == 0


@pytest.mark.unit
@pytest.mark.parametrize("topic", ["reports.v1.dlq", "assessments.v1.dlq", "alerts.v1.dlq"])
def test_dlq_replay_counter_starts_at_zero(fresh: dict[tuple[str, frozenset[tuple[str, str]]], float],
                                           topic: str) -> None:
    assert _value(fresh, "kafka_dlq_messages_replayed_total", topic=topic) == 0


@pytest.mark.unit
def test_http_series_of_every_route_start_at_zero(fresh: dict[tuple[str, frozenset[tuple[str, str]]], float]
                                                  ) -> None:
    for status in ("202", "500", "503"):
        assert _value(fresh, "http_requests_total", method="POST", route="/v1/reports", status=status) == 0
    assert _value(fresh, "http_requests_total", method="GET", route="/v1/reports/{report_id}", status="200") == 0
    assert _value(fresh, "http_request_duration_seconds_count", method="POST", route="/v1/reports") == 0


@pytest.mark.unit
@pytest.mark.asyncio(loop_scope="session")
async def test_a_failing_validation_hook_does_not_turn_a_422_into_a_500() -> None:
    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield

    from shared.http import on_validation_error

    app = create_service_app(title="t", description="t", version="1", lifespan=lifespan, checks=dict)
    seen: list[str] = []

    def broken(_request: object, details: list[dict[str, object]]) -> None:
        seen.extend(str(detail.get("field")) for detail in details)
        raise RuntimeError("hook bug")

    on_validation_error(app, broken)

    @app.get("/items/{number}")
    async def item(number: int) -> int:
        return number

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/items/not-a-number")
    assert response.status_code == 422
    assert seen


def _rejected(reason: str) -> float:
    return REGISTRY.get_sample_value("intake_reports_rejected_total", {"reason": reason}) or 0.0


@pytest.mark.integration
@pytest.mark.asyncio(loop_scope="session")
async def test_every_422_of_a_submission_counts_as_rejected_for_validation(service_env: dict[str, str]) -> None:
    async with running_intake(intake_settings(service_env)) as intake:
        created = await intake.post("/v1/units", json={"name": "测试工会", "region_code": "320102"},
                                    headers={"Authorization": f"Bearer {intake_settings(service_env).admin_token}"})
        assert created.status_code == 201, created.text
        auth = {"Authorization": f"Bearer {created.json()['api_key']}"}
        before = _rejected("validation")
        bad_bodies = [{}, {**make_report_body(), "workers_involved": -1}, {**make_report_body(), "kind": "nonsense"}]
        for body in bad_bodies:
            response = await intake.post("/v1/reports", json=body, headers=auth)
            assert response.status_code == 422, response.text
        not_json = await intake.post("/v1/reports", content=b"{", headers={**auth, "Content-Type": "application/json"})
        assert not_json.status_code == 422
        assert _rejected("validation") == before + len(bad_bodies) + 1
        # A 422 elsewhere (registering a unit) is not a rejected report.
        admin = {"Authorization": f"Bearer {intake_settings(service_env).admin_token}"}
        assert (await intake.post("/v1/units", json={}, headers=admin)).status_code == 422
        assert _rejected("validation") == before + len(bad_bodies) + 1
