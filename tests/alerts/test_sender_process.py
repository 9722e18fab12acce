"""The delivery sender in a process of its own (`ALERTS_DELIVERY_PROCESS`, `services/alerts/sender.py`): it sends,
its metrics show at the service's `/metrics` under the same names, it is started again when it dies (and
`/healthz` says so meanwhile), it stops with the service after the send in flight is done and stored, it stops by
itself when the service dies, and with the setting off the service sends from its own process as before."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import create_async_engine

from services.alerts import sender as sender_module
from services.alerts.app import create_app
from services.alerts.sender import DeliverySender
from services.alerts.settings import AlertsSettings
from shared.kafka import EventProducer
from tests.alerts.conftest import AlertsWorld, alerts_settings, make_assessed
from tests.conftest import StartService
from tests.support.receivers import hanging_receiver, webhook_receiver

pytestmark = pytest.mark.integration

SECRET = "webhook-secret-0123456789"
RED = {"workers_involved": 320, "collective_action": ["road_blocking"]}


@asynccontextmanager
async def sender_world(env: dict[str, str], **overrides: Any) -> AsyncIterator[tuple[AlertsWorld, DeliverySender]]:
    """The alerts service in-process with its sender child process (ALERTS_DELIVERY_PROCESS), and that sender."""
    app = create_app(alerts_settings(env, **{"delivery_process": True, **overrides}))
    producer = EventProducer(env["KAFKA_BOOTSTRAP_SERVERS"], client_id="alerts-tests",
                             topic_prefix=env["KAFKA_TOPIC_PREFIX"])
    db = create_async_engine(env["DATABASE_URL"])
    try:
        async with app.router.lifespan_context(app), httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app), base_url="http://alerts") as client:
            sender = app.state.context.sender
            assert isinstance(sender, DeliverySender)
            yield AlertsWorld(env, client, db, producer), sender
    finally:
        await producer.stop()
        await db.dispose()


async def _webhook_body(world: AlertsWorld, region: str, url: str) -> None:
    await world.body(region_code=region, channels=[{"type": "webhook", "url": url, "secret": SECRET}])


async def _running(sender: DeliverySender, world: AlertsWorld, other_than: int | None = None) -> int:
    async def probe() -> int | None:
        pid = sender.pid
        return pid if pid is not None and pid != other_than else None

    pid: int = await world.wait_for(probe, what="the sender process running")
    return pid


def _sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def _health(world: AlertsWorld) -> str | None:
    checks: dict[str, str] = (await world.client.get("/healthz")).json()["checks"]
    return checks.get("delivery_sender")


@pytest.mark.asyncio(loop_scope="session")
async def test_the_sender_process_sends_and_its_metrics_show_at_the_services_metrics(
    alerts_env: dict[str, str],
) -> None:
    with webhook_receiver() as receiver:
        async with sender_world(alerts_env) as (world, sender):
            # The service's start-up waited for its sender: nothing committed from now on waits for it to start.
            assert sender.started
            pid = await _running(sender, world)
            assert pid != os.getpid()
            await _webhook_body(world, "320102", receiver.url)
            before = _sample("alerts_deliveries_total", channel="webhook", outcome="delivered")
            event = make_assessed(region_code="320102", contact=None, **RED)
            await world.publish(event)
            await world.wait_for(lambda: _now(len(receiver.accepted) == 1), what="the webhook delivered")
            await world.wait_for(lambda: _now(
                _sample("alerts_deliveries_total", channel="webhook", outcome="delivered") == before + 1),
                what="the delivery counted")
            text = (await world.client.get("/metrics")).text
            assert await _health(world) == "ok"

    families = {family.name: family for family in text_string_to_metric_families(text)}
    # Once each (never two families of one name), with the labels they always had.
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types))
    delivered = [s for s in families["alerts_deliveries"].samples
                 if s.name == "alerts_deliveries_total" and s.labels == {"channel": "webhook", "outcome": "delivered"}]
    assert [s.value for s in delivered] == [before + 1]
    assert {"channel", "outcome"} == {key for s in families["alerts_deliveries"].samples for key in s.labels}
    for histogram in ("pipeline_report_to_delivery_seconds", "pipeline_alert_to_delivery_seconds"):
        [count] = [s.value for s in families[histogram].samples if s.name == f"{histogram}_count"]
        assert count >= 1, histogram
    attempts = [s for s in families["alerts_delivery_attempt_seconds"].samples
                if s.name == "alerts_delivery_attempt_seconds_count" and s.labels == {"channel": "webhook"}]
    assert attempts
    assert attempts[0].value >= 1
    # The child's counts stay in the service's registry once it has stopped.
    assert _sample("alerts_deliveries_total", channel="webhook", outcome="delivered") == before + 1
    assert not _alive(pid)


@pytest.mark.asyncio(loop_scope="session")
async def test_a_sender_process_that_dies_is_started_again_and_health_shows_it_meanwhile(
    alerts_env: dict[str, str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sender_module, "RESTART_SECONDS", 8.0)  # long enough to see it down on /healthz
    with webhook_receiver() as receiver:
        async with sender_world(alerts_env) as (world, sender):
            first = await _running(sender, world)
            await _webhook_body(world, "320104", receiver.url)
            event = make_assessed(region_code="320104", contact=None, **RED)
            await world.publish(event)
            await world.wait_for(lambda: _now(len(receiver.accepted) == 1), what="the first webhook delivered")
            delivered = await world.wait_for(lambda: _now(
                _sample("alerts_deliveries_total", channel="webhook", outcome="delivered")), what="counted")
            restarts = _sample("alerts_delivery_sender_restarts_total")

            os.kill(first, signal.SIGKILL)
            await world.wait_for(lambda: when_equal(_health(world), "unavailable"), what="/healthz: sender down")
            second = await _running(sender, world, other_than=first)
            await world.wait_for(lambda: when_equal(_health(world), "ok"), what="/healthz: sender up again")

            later = make_assessed(region_code="320104", contact=None, **RED)
            await world.publish(later)
            await world.wait_for(lambda: _now(len(receiver.accepted) == 2), what="the second webhook delivered")
            counted = _sample("alerts_deliveries_total", channel="webhook", outcome="delivered")

    assert second != first
    assert _sample("alerts_delivery_sender_restarts_total") == restarts + 1
    # The counts of the killed child (as last heard) are kept: the total does not fall with a restart.
    assert counted >= delivered
    assert receiver.delivery_ids() == list(dict.fromkeys(receiver.delivery_ids()))  # no delivery twice


@pytest.mark.asyncio(loop_scope="session")
async def test_stopping_the_service_lets_the_send_in_flight_finish_and_be_stored(alerts_env: dict[str, str]) -> None:
    stop = asyncio.Event()
    started: asyncio.Future[tuple[AlertsWorld, DeliverySender]] = asyncio.get_running_loop().create_future()

    async def service() -> None:
        async with sender_world(alerts_env) as world_and_sender:
            started.set_result(world_and_sender)
            await stop.wait()

    with hanging_receiver(status=200) as gate:
        running = asyncio.create_task(service())
        world, sender = await started
        pid = await _running(sender, world)
        await _webhook_body(world, "320105", gate.url)
        event = make_assessed(region_code="320105", contact=None, **RED)
        await world.publish(event)
        alert = await world.alert_for(event.report_id)
        await world.wait_for(lambda: _now(len(gate.requests) == 1), what="the webhook in flight")

        stop.set()  # the service stops while the receiver still holds the request
        await world.wait_for(lambda: _now(sender._stopping.is_set()), what="the service stopping")
        await asyncio.sleep(0.3)  # the child is asked to stop meanwhile
        gate.released.set()
        await running
        state = await _delivery_state(alerts_env, alert["alert_id"])

    assert len(gate.requests) == 1
    assert state == ("delivered", 1)
    assert not _alive(pid)


@pytest.mark.asyncio(loop_scope="session")
async def test_with_the_setting_off_the_service_sends_from_its_own_process(alerts_env: dict[str, str]) -> None:
    assert not AlertsSettings.model_fields["delivery_process"].default  # off unless asked for
    from tests.alerts.conftest import alerts_world

    with webhook_receiver() as receiver:
        async with alerts_world(alerts_env, delivery_process=False) as world:
            app = world.client._transport.app  # type: ignore[attr-defined]
            assert app.state.context.sender is None
            children = _children(os.getpid())
            await _webhook_body(world, "320111", receiver.url)
            event = make_assessed(region_code="320111", contact=None, **RED)
            await world.publish(event)
            await world.wait_for(lambda: _now(len(receiver.accepted) == 1), what="the webhook delivered")
            assert await _health(world) is None
            assert _children(os.getpid()) == children  # no process started for it


def test_the_sender_process_stops_by_itself_when_the_service_dies(
    start_service: StartService, isolated_env: dict[str, str],
) -> None:
    alerts = start_service("alerts", ALERTS_DELIVERY_PROCESS="true")
    assert alerts.process is not None
    [child] = [pid for pid in _children(alerts.process.pid) if b"resource_tracker" not in _cmdline(pid)]
    os.kill(alerts.process.pid, signal.SIGKILL)  # the service alone, as a crash would
    alerts.process.wait(10)
    deadline = time.monotonic() + 30
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(child)


# --- helpers ------------------------------------------------------------------------------------------------------


async def _now(value: Any) -> Any:
    return value


async def when_equal(awaitable: Any, wanted: Any) -> bool:
    return bool(await awaitable == wanted)


async def _delivery_state(env: dict[str, str], alert_id: str) -> tuple[str, int]:
    engine = create_async_engine(env["DATABASE_URL"])
    try:
        async with engine.connect() as connection:
            from sqlalchemy import text

            row = (await connection.execute(text(
                "SELECT state, attempts FROM alerts.deliveries WHERE alert_id = :a"), {"a": alert_id})).one()
            return str(row[0]), int(row[1])
    finally:
        await engine.dispose()


def _children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(child) for child in path.read_text().split()} if path.exists() else set()


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its parent to reap it has exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
