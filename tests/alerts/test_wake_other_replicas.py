"""The alerts service wakes another replica when that one must act: its relay holds the outbox lock while ours
stands by, so the `alerts.v1` rows committed here wait for it. A NOTIFY on the work channel, sent from the
service's listener connection (`shared.runtime.NotificationListener`), not from inside the consumer's transaction
(notifying commits are serialised by PostgreSQL on one global lock). When it arrives, the work it announces is
already committed and visible, as the other replica needs it to be. (New deliveries need nobody else: the consumer
hands them to the sender of its own process.)"""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from services.alerts.models import OutboxMessage
from services.alerts.repository import WAKE_CHANNEL
from shared.outbox import relay_lock_key
from tests.alerts.conftest import AlertsWorld, make_assessed

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

RED = {"workers_involved": 320, "collective_action": ["road_blocking"]}


async def test_a_relay_standing_by_notifies_the_publishing_replica_with_the_events_visible(
        alerts: AlertsWorld) -> None:
    await alerts.body(region_code="320508")
    dsn = make_url(alerts.env["DATABASE_URL"]).set(drivername="postgresql").render_as_string(hide_password=False)
    other_replica = await asyncpg.connect(dsn)
    publishing = await asyncpg.connect(dsn)  # the other replica's relay, in the middle of a batch
    heard: asyncio.Queue[int] = asyncio.Queue()  # the notifying backends
    event = make_assessed(region_code="320508", contact=None, **RED)

    def notified(_connection: object, pid: int, _channel: str, _payload: str) -> None:
        heard.put_nowait(pid)

    try:
        await other_replica.add_listener(WAKE_CHANNEL, notified)
        await publishing.execute("BEGIN")
        await publishing.fetchval("SELECT pg_advisory_xact_lock($1)", relay_lock_key(OutboxMessage))
        await alerts.publish(event)
        while True:
            pid = await asyncio.wait_for(heard.get(), 30)
            visible = await other_replica.fetchval(
                "SELECT count(*) FROM alerts.outbox o JOIN alerts.alerts a ON a.id = o.payload::jsonb ->> 'alert_id' "
                "WHERE a.report_ids ? $1 AND o.sent_at IS NULL", event.report_id)
            if visible:
                break
        # The NOTIFY came from the listener's connection, on its own after the commit: the last statement of that
        # backend is the notification itself, not the COMMIT of a transaction that notified inside it.
        last = await other_replica.fetchrow("SELECT state, query FROM pg_stat_activity WHERE pid = $1", pid)
        assert last is not None
        assert last["state"] == "idle"
        assert last["query"].startswith("SELECT pg_notify("), last["query"]
        assert visible >= 1
    finally:
        await publishing.close()  # its transaction, and the lock, end with it
        await other_replica.close()
