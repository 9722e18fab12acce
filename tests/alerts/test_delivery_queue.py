"""The delivery queue as the bodies see it (issue 11 item 4, issue 15): a hanging receiver holds up no other body,
the channel is read from the body when sending (a corrected URL or a rotated secret applies to pending
deliveries), deactivating a body cancels its pending deliveries, and a permanent refusal stops at once as
`failed`, recorded on the alert and counted."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import REGISTRY

from tests.alerts.conftest import ADMIN, AlertsWorld, alerts_world, make_assessed
from tests.alerts.test_channels import closed_port
from tests.support.receivers import hanging_receiver, signature_is_valid, webhook_receiver

pytestmark = pytest.mark.integration

SECRET = "webhook-secret-0123456789"
ROTATED = "rotated-secret-9876543210"
RED = {"workers_involved": 320, "collective_action": ["road_blocking"]}


async def _deliveries(world: AlertsWorld, report_id: str) -> list[dict[str, Any]]:
    alert = await world.alert_for(report_id)
    detail = (await world.client.get(f"/v1/alerts/{alert['alert_id']}", headers=ADMIN)).json()
    deliveries: list[dict[str, Any]] = detail["deliveries"]
    return deliveries


async def _until(world: AlertsWorld, report_id: str, what: str, predicate: Any) -> list[dict[str, Any]]:
    async def probe() -> list[dict[str, Any]] | None:
        deliveries = await _deliveries(world, report_id)
        return deliveries if deliveries and predicate(deliveries) else None

    result: list[dict[str, Any]] = await world.wait_for(probe, what=what)
    return result


def _failed_count(channel: str) -> float | None:
    return REGISTRY.get_sample_value("alerts_deliveries_total", {"channel": channel, "outcome": "failed"})


@pytest.mark.asyncio(loop_scope="session")
async def test_a_hanging_receiver_does_not_hold_up_another_bodys_delivery(alerts_env: dict[str, str]) -> None:
    # The hanging receiver would be given up on after 60 s; the other body's delivery must not wait for that.
    with hanging_receiver() as hanging, webhook_receiver() as healthy:
        async with alerts_world(alerts_env, delivery_timeout_seconds=60) as world:
            await world.body(region_code="320581", channels=[{"type": "webhook", "url": hanging.url,
                                                              "secret": SECRET}])
            await world.body(region_code="320582", channels=[{"type": "webhook", "url": healthy.url,
                                                              "secret": SECRET}])
            stuck = make_assessed(region_code="320581", contact=None, **RED)
            await world.publish(stuck)
            await world.wait_for(lambda: _now(len(hanging.requests) == 1), what="the hanging receiver called")

            other = make_assessed(region_code="320582", contact=None, **RED)
            await world.publish(other)
            [delivered] = await _until(world, other.report_id, "the other body's delivery recorded",
                                       lambda ds: ds[0]["state"] == "delivered")
            [still_hanging] = await _deliveries(world, stuck.report_id)

    assert len(healthy.accepted) == 1
    assert delivered["attempts"] == 1
    # The other body got its alert while the first attempt to the hanging one had not even finished.
    assert (still_hanging["state"], still_hanging["attempts"]) == ("pending", 0)


@pytest.mark.asyncio(loop_scope="session")
async def test_a_permanent_refusal_fails_at_once_and_is_counted(alerts_env: dict[str, str]) -> None:
    with webhook_receiver(fail_first=10**9, fail_status=404) as receiver:
        async with alerts_world(alerts_env) as world:
            assert _failed_count("webhook") is not None  # the series exists from the start
            assert _failed_count("dingtalk") is not None
            before = _failed_count("webhook") or 0.0
            await world.body(region_code="320583", channels=[{"type": "webhook", "url": receiver.url,
                                                              "secret": SECRET}])
            event = make_assessed(region_code="320583", contact=None, **RED)
            await world.publish(event)
            [failed] = await _until(world, event.report_id, "the delivery failed",
                                    lambda ds: ds[0]["state"] == "failed")
            await asyncio.sleep(1.5)  # retries with this world's settings come within a second: room for a wrong one
            [after] = await _deliveries(world, event.report_id)

    assert (failed["attempts"], failed["last_status"], failed["next_attempt_at"]) == (1, 404, None)
    assert failed["last_error"] == "HTTP 404"
    assert after["attempts"] == 1
    assert len(receiver.requests) == 1
    assert _failed_count("webhook") == before + 1


@pytest.mark.asyncio(loop_scope="session")
async def test_a_corrected_url_and_a_rotated_secret_apply_to_a_pending_delivery(alerts_env: dict[str, str]) -> None:
    dead = f"http://127.0.0.1:{closed_port()}/hook"
    with webhook_receiver() as receiver:
        async with alerts_world(alerts_env) as world:
            body = await world.body(region_code="320585", channels=[{"type": "webhook", "url": dead,
                                                                     "secret": SECRET}])
            event = make_assessed(region_code="320585", contact=None, **RED)
            await world.publish(event)
            [retrying] = await _until(world, event.report_id, "a failed attempt",
                                      lambda ds: ds[0]["attempts"] >= 1)
            assert retrying["state"] == "pending"

            changed = await world.client.patch(f"/v1/bodies/{body['body_id']}", headers=ADMIN, json={
                "channels": [{"type": "webhook", "url": receiver.url, "secret": ROTATED}]})
            assert changed.status_code == 200, changed.text
            [delivered] = await _until(world, event.report_id, "delivered to the corrected URL",
                                       lambda ds: ds[0]["state"] == "delivered")

    assert delivered["delivery_id"] == retrying["delivery_id"]
    [(headers, raw)] = receiver.accepted
    assert headers["x-delivery-id"] == retrying["delivery_id"]
    assert signature_is_valid(headers, raw, ROTATED)
    assert not signature_is_valid(headers, raw, SECRET)


@pytest.mark.asyncio(loop_scope="session")
async def test_deactivating_a_body_cancels_its_pending_deliveries(alerts_env: dict[str, str]) -> None:
    with webhook_receiver(fail_first=10**9) as receiver:  # down: every attempt fails and is retried
        async with alerts_world(alerts_env) as world:
            body = await world.body(region_code="320205", channels=[{"type": "webhook", "url": receiver.url,
                                                                     "secret": SECRET}])
            event = make_assessed(region_code="320205", contact=None, **RED)
            await world.publish(event)
            await _until(world, event.report_id, "a failed attempt", lambda ds: ds[0]["attempts"] >= 1)

            assert (await world.client.delete(f"/v1/bodies/{body['body_id']}", headers=ADMIN)).status_code == 204
            [cancelled] = await _deliveries(world, event.report_id)
            requests_then = len(receiver.requests)
            await asyncio.sleep(1.5)  # retries come every 0.2–1 s: room for a wrong one to show up
            [later] = await _deliveries(world, event.report_id)

    assert cancelled["state"] == "cancelled"
    assert cancelled["next_attempt_at"] is None
    assert "停用" in cancelled["last_error"]
    assert "deactivated" in cancelled["last_error"]
    assert later == cancelled
    assert len(receiver.requests) <= requests_then + 1  # at most the one attempt in flight at that moment


async def _now(value: bool) -> bool:
    return value
