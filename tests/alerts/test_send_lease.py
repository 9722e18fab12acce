"""New deliveries handed to this process's sender by the consumer's own transaction (`service.SendLease`): stored
already leased to it, with the channel read from the body in that transaction, so that no claim has to find them;
what the sender has no room for is left to the claim, due at once."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts import service
from services.alerts.channels import EmailChannel
from services.alerts.lifecycle import Policy
from shared.events import utcnow
from tests.alerts.conftest import AlertsWorld, make_assessed
from tests.factories import credit_code

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

RED = {"workers_involved": 320, "collective_action": ["road_blocking"]}
LEASE = timedelta(seconds=600)


def lease_of(alerts: AlertsWorld, room: int) -> service.SendLease:
    context = alerts.client._transport.app.state.context  # type: ignore[attr-defined]
    return service.SendLease(room=room, until=utcnow() + LEASE, cipher=context.settings.channel_cipher())


async def handle_with(alerts: AlertsWorld, region_code: str, lease: service.SendLease) -> list[str]:
    context = alerts.client._transport.app.state.context  # type: ignore[attr-defined]
    policy: Policy = context.policy
    event = make_assessed(region_code=region_code, enterprise={"credit_code": credit_code()}, **RED)
    async with AsyncSession(alerts.db) as session, session.begin():
        changed = await service.handle_assessed_batch(session, [event], policy, utcnow(), lease)
    [(_, alert_ids)] = changed
    return alert_ids


async def test_the_new_deliveries_are_stored_leased_and_handed_over_with_the_channel_of_their_body(
        alerts: AlertsWorld) -> None:
    union = await alerts.body(region_code="320412", channels=[{"type": "email", "address": "union@example.org"}])
    mediation = await alerts.body(kind="mediation_centre", region_code="320412",
                                  channels=[{"type": "email", "address": "mediation@example.org"}])
    lease = lease_of(alerts, room=10)

    [alert_id] = await handle_with(alerts, "320412", lease)

    rows = await alerts.rows("SELECT id, body_id, payload, next_attempt_at, state, attempts FROM alerts.deliveries "
                             "WHERE alert_id = :a", a=alert_id)
    assert {str(row.body_id) for row in rows} == {union["body_id"], mediation["body_id"]}
    assert lease.left == 0
    by_id = {item.delivery.id: item for item in lease.claimed}
    assert set(by_id) == {str(row.id) for row in rows}
    for row in rows:
        item = by_id[str(row.id)]
        assert row.next_attempt_at == lease.until  # no claim finds it before its lease runs out
        assert (row.state, row.attempts) == ("pending", 0)
        assert item.delivery.payload == row.payload  # the stored bytes are what is sent
        assert item.delivery.alert_id == alert_id
        expected = "union@example.org" if str(row.body_id) == union["body_id"] else "mediation@example.org"
        assert item.channel == EmailChannel(type="email", address=expected)


async def test_what_the_sender_has_no_room_for_is_left_to_the_claim_due_at_once(alerts: AlertsWorld) -> None:
    await alerts.body(region_code="320413")
    await alerts.body(kind="mediation_centre", region_code="320413")
    lease = lease_of(alerts, room=1)
    before = utcnow()

    [alert_id] = await handle_with(alerts, "320413", lease)

    assert len(lease.claimed) == 1
    assert lease.left == 1
    rows = await alerts.rows("SELECT id, next_attempt_at FROM alerts.deliveries WHERE alert_id = :a", a=alert_id)
    [leased] = [row for row in rows if str(row.id) == lease.claimed[0].delivery.id]
    [left] = [row for row in rows if str(row.id) != lease.claimed[0].delivery.id]
    assert leased.next_attempt_at == lease.until
    # Due when stored (this app's own worker may have claimed it since: then it holds its own, shorter lease).
    assert left.next_attempt_at < before + LEASE / 2


async def test_without_a_lease_every_new_delivery_is_due_at_once(alerts: AlertsWorld) -> None:
    await alerts.body(region_code="320414")
    context = alerts.client._transport.app.state.context  # type: ignore[attr-defined]
    event = make_assessed(region_code="320414", enterprise={"credit_code": credit_code()}, **RED)
    before = utcnow()
    async with AsyncSession(alerts.db) as session, session.begin():
        [(_, [alert_id])] = await service.handle_assessed_batch(session, [event], context.policy, utcnow())

    [next_attempt_at] = [row.next_attempt_at for row in await alerts.rows(
        "SELECT next_attempt_at FROM alerts.deliveries WHERE alert_id = :a", a=alert_id)]
    assert next_attempt_at < before + LEASE / 2
