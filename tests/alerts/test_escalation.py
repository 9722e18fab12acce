"""Escalation timers on real PostgreSQL: county → city → province while nobody acknowledges, stopped by an
acknowledgement. `ACK_DEADLINE_SCALE` 0.0005 turns the orange deadline of 4 h into 7.2 s."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from tests.alerts.conftest import ADMIN, AlertsWorld, alerts_world, make_assessed, when

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ORANGE = {"petition": "repeated"}
SCALE = 0.0005
ORANGE_DEADLINE = 14400 * SCALE


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def world(alerts_env: dict[str, str]) -> AsyncIterator[AlertsWorld]:
    async with alerts_world(alerts_env, ack_deadline_scale=SCALE) as world:
        yield world


async def view(world: AlertsWorld, alert_id: str) -> dict[str, Any]:
    result: dict[str, Any] = (await world.client.get(f"/v1/alerts/{alert_id}", headers=ADMIN)).json()
    return result


async def test_an_unacknowledged_alert_climbs_county_city_province_and_stops_there(world: AlertsWorld) -> None:
    county = await world.body(region_code="340102")
    city = await world.body(level="city", region_code="340100")
    province = await world.body(level="province", region_code="340000")
    event = make_assessed(region_code="340102", **ORANGE)
    started = time.monotonic()

    await world.publish(event)
    alert_id = (await world.alert_for(event.report_id))["alert_id"]
    climbed = await world.wait_for(
        lambda: when(view(world, alert_id), lambda v: len(v["escalations"]) == 2), timeout=60, what="two escalations")
    await asyncio.sleep(ORANGE_DEADLINE * 1.5)  # past the province deadline: nobody is above it
    final = await view(world, alert_id)

    assert time.monotonic() - started >= 2 * ORANGE_DEADLINE * 0.9  # it waited for the deadlines
    assert [(n["body_id"], n["reason"]) for n in climbed["notified"]] == [
        (county["body_id"], "routing"), (city["body_id"], "escalation"), (province["body_id"], "escalation")]
    assert [(e["from_level"], e["to_level"]) for e in climbed["escalations"]] == [
        ("county", "city"), ("city", "province")]
    assert len(final["escalations"]) == 2
    assert final["state"] == "open"
    deliveries = {(d["body_id"], d["event"]) for d in final["deliveries"]}
    assert (province["body_id"], "alert.escalated") in deliveries


async def test_an_acknowledgement_stops_the_climb(world: AlertsWorld) -> None:
    await world.body(region_code="341102")
    city = await world.body(level="city", region_code="341100")
    event = make_assessed(region_code="341102", **ORANGE)

    await world.publish(event)
    alert_id = (await world.alert_for(event.report_id))["alert_id"]
    await world.wait_for(lambda: when(view(world, alert_id), lambda v: len(v["escalations"]) == 1), timeout=60,
                         what="first escalation")
    acked = await world.client.post(f"/v1/alerts/{alert_id}/ack", headers={"Authorization": city["auth"]},
                                    json={"person": "周敏"})
    await asyncio.sleep(ORANGE_DEADLINE * 1.5)
    final = await view(world, alert_id)

    assert acked.status_code == 200
    assert final["state"] == "acknowledged"
    assert final["ack_deadline"] is None
    assert len(final["escalations"]) == 1  # the province (340000 from the other test) was never told


async def test_the_alert_shows_the_real_deadline_while_the_timer_waits_the_scaled_time(world: AlertsWorld) -> None:
    await world.body(region_code="360102")
    event = make_assessed(region_code="360102", **ORANGE)

    await world.publish(event)
    alert = await world.alert_for(event.report_id)
    (timer, opened_at), = await world.rows("SELECT ack_deadline, opened_at FROM alerts.alerts WHERE id = :i",
                                           i=alert["alert_id"])

    assert datetime.fromisoformat(alert["ack_deadline"]) == opened_at + timedelta(hours=4)
    assert alert["ack_deadline_rule"] == "clock_hours"
    assert timer == opened_at + timedelta(seconds=ORANGE_DEADLINE)
