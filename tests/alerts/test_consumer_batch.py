"""The set-based consumer (`service.handle_assessed_batch`) on real PostgreSQL and Kafka: a batch of assessments is
decided report after report in memory and written with a fixed number of statements, whatever its size; two reports
of one enterprise in a batch share one alert; a redelivered batch changes nothing."""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from services.alerts import service
from services.alerts.lifecycle import Policy
from shared.events import ReportAssessed, utcnow
from tests.alerts.conftest import ADMIN, AlertsWorld, make_assessed
from tests.factories import credit_code
from tests.support.statements import counted

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

RED = {"workers_involved": 320, "collective_action": ["road_blocking"]}



def policy_of(alerts: AlertsWorld) -> Policy:
    policy: Policy = alerts.client._transport.app.state.context.policy  # type: ignore[attr-defined]
    return policy


async def handle(alerts: AlertsWorld, events: Sequence[ReportAssessed]) -> list[tuple[ReportAssessed, list[str]]]:
    """One batch in one transaction, as the consumer runs it (without going through Kafka)."""
    async with AsyncSession(alerts.db) as session, session.begin():
        return await service.handle_assessed_batch(session, events, policy_of(alerts), utcnow())


async def alerts_of(alerts: AlertsWorld, code: str) -> list[Any]:
    return await alerts.rows("SELECT id, level, state, report_ids, outcome FROM alerts.alerts WHERE credit_code = :c "
                             "ORDER BY opened_at, id", c=code)


async def outbox_types(alerts: AlertsWorld, alert_id: str) -> list[str]:
    rows = await alerts.rows("SELECT payload FROM alerts.outbox WHERE payload::jsonb ->> 'alert_id' = :a ORDER BY id",
                             a=alert_id)
    return [json.loads(payload)["event_type"] for (payload,) in rows]


async def notifications(alerts: AlertsWorld, alert_id: str) -> list[tuple[str, str]]:
    rows = await alerts.rows("SELECT body_id, reason FROM alerts.notifications WHERE alert_id = :a ORDER BY id",
                             a=alert_id)
    return [(str(body_id), str(reason)) for body_id, reason in rows]


async def test_two_reports_of_one_enterprise_and_kind_in_one_batch_open_one_alert_the_second_joins(
        alerts: AlertsWorld) -> None:
    union = await alerts.body(region_code="320411")
    mediation = await alerts.body(kind="mediation_centre", region_code="320411")
    code = credit_code()
    first = make_assessed(region_code="320411", enterprise={"credit_code": code}, **RED)
    second = make_assessed(region_code="320411", enterprise={"credit_code": code}, **RED)

    result = await handle(alerts, [first, second])

    (alert,) = await alerts_of(alerts, code)
    alert_id, level, state, report_ids, _ = alert
    assert [ids for _, ids in result] == [[alert_id], [alert_id]]
    assert (level, state, report_ids) == ("red", "open", [first.report_id, second.report_id])
    assert sorted(await notifications(alerts, alert_id)) == sorted(
        [(union["body_id"], "routing"), (mediation["body_id"], "routing")])
    assert await outbox_types(alerts, alert_id) == ["alert.opened"]
    deliveries = await alerts.rows("SELECT body_id, payload FROM alerts.deliveries WHERE alert_id = :a", a=alert_id)
    assert sorted(str(body_id) for body_id, _ in deliveries) == sorted([union["body_id"], mediation["body_id"]])
    # the payload shows the alert as it was opened, by the first report, with both bodies notified
    payload = json.loads(deliveries[0][1])
    assert payload["alert"]["report_ids"] == [first.report_id]
    assert sorted(n["body_id"] for n in payload["alert"]["notified"]) == sorted(
        [union["body_id"], mediation["body_id"]])
    inbox = await alerts.rows("SELECT body_id FROM alerts.inbox_entries WHERE alert_id = :a", a=alert_id)
    assert sorted(str(body_id) for (body_id,) in inbox) == sorted([union["body_id"], mediation["body_id"]])
    stored = await alerts.scalar("SELECT count(*) FROM alerts.assessed_reports WHERE credit_code = :c", c=code)
    assert stored == 2


async def test_two_reports_of_one_enterprise_sent_together_through_kafka_share_one_alert(alerts: AlertsWorld) -> None:
    await alerts.body(region_code="320412")
    code = credit_code()
    events = [make_assessed(region_code="320412", enterprise={"credit_code": code}, **RED) for _ in range(3)]

    await alerts.publish(*events)
    for assessed in events:
        await alerts.processed(assessed)

    (alert,) = await alerts_of(alerts, code)
    assert alert.report_ids == [assessed.report_id for assessed in events]
    assert await outbox_types(alerts, alert.id) == ["alert.opened"]


async def test_a_batch_mixing_a_level_raise_and_a_new_enterprise(alerts: AlertsWorld) -> None:
    union = await alerts.body(region_code="320581")
    mediation = await alerts.body(kind="mediation_centre", region_code="320581")
    city_union = await alerts.body(level="city", region_code="320500")
    raised_code, new_code = credit_code(), credit_code()
    yellow = make_assessed(region_code="320581", enterprise={"credit_code": raised_code})
    assert yellow.level == "yellow"
    await handle(alerts, [yellow])
    (opened,) = await alerts_of(alerts, raised_code)

    red = make_assessed(region_code="320581", enterprise={"credit_code": raised_code}, **RED)
    other = make_assessed(region_code="320581", enterprise={"credit_code": new_code}, **RED)
    result = await handle(alerts, [red, other])

    (raised,) = await alerts_of(alerts, raised_code)
    (new,) = await alerts_of(alerts, new_code)
    assert [ids for _, ids in result] == [[opened.id], [new.id]]
    assert raised.id == opened.id
    assert (raised.level, raised.state, raised.report_ids) == ("red", "open", [yellow.report_id, red.report_id])
    assert (new.level, new.state, new.report_ids) == ("red", "open", [other.report_id])
    everyone = [union["body_id"], mediation["body_id"], city_union["body_id"]]
    told = await notifications(alerts, opened.id)
    assert [reason for _, reason in told] == ["routing", "routing", "level_raised", "level_raised", "level_raised"]
    assert sorted(body for body, _ in told[:2]) == sorted(everyone[:2])
    assert sorted(body for body, _ in told[2:]) == sorted(everyone)
    assert sorted(body for body, _ in await notifications(alerts, new.id)) == sorted(everyone)
    assert await outbox_types(alerts, opened.id) == ["alert.opened", "alert.level_raised"]
    assert await outbox_types(alerts, new.id) == ["alert.opened"]
    # the raise's webhook carries the new level and every notification so far, the earlier routing ones included
    payloads = await alerts.rows("SELECT payload FROM alerts.deliveries WHERE alert_id = :a "
                                 "AND event_type = 'alert.level_raised'", a=opened.id)
    assert len(payloads) == 3
    body = json.loads(payloads[0][0])
    assert body["alert"]["level"] == "red"
    assert sorted((n["body_id"], n["reason"]) for n in body["alert"]["notified"]) == sorted(
        await notifications(alerts, opened.id))
    # the inbox of the city union, told only now, lists the raised alert at its new level
    inbox = await alerts.client.get("/v1/alerts", headers={"Authorization": city_union["auth"]})
    assert {(item["alert_id"], item["level"]) for item in inbox.json()["items"]} == {(opened.id, "red"),
                                                                                    (new.id, "red")}


async def test_an_expired_alert_is_closed_and_its_successor_opened_in_the_same_batch(alerts: AlertsWorld) -> None:
    await alerts.body(region_code="320582")
    code = credit_code()
    old = make_assessed(region_code="320582", enterprise={"credit_code": code}, **RED)
    await handle(alerts, [old])
    async with alerts.db.begin() as connection:
        await connection.exec_driver_sql(
            "UPDATE alerts.alerts SET updated_at = updated_at - interval '8 days' WHERE credit_code = $1", (code,))
    late = make_assessed(region_code="320582", enterprise={"credit_code": code}, **RED)
    joining = make_assessed(region_code="320582", enterprise={"credit_code": code}, **RED)

    result = await handle(alerts, [late, joining])

    expired, successor = await alerts_of(alerts, code)
    assert (expired.state, expired.outcome, expired.report_ids) == ("resolved", "expired", [old.report_id])
    assert (successor.state, successor.report_ids) == ("open", [late.report_id, joining.report_id])
    assert [ids for _, ids in result] == [[successor.id], [successor.id]]
    assert await outbox_types(alerts, expired.id) == ["alert.opened", "alert.resolved"]


async def snapshot_of_tables(alerts: AlertsWorld) -> dict[str, Any]:
    tables = ("alerts", "notifications", "deliveries", "outbox", "assessed_reports", "inbox_entries",
              "processed_events")
    counts = {table: await alerts.scalar(f"SELECT count(*) FROM alerts.{table}") for table in tables}
    rows = await alerts.rows("SELECT id, level, state, report_ids, updated_at FROM alerts.alerts ORDER BY id")
    return {**counts, "alert_rows": [tuple(row) for row in rows]}


async def test_a_redelivered_batch_changes_nothing(alerts: AlertsWorld) -> None:
    await alerts.body(region_code="320583")
    code = credit_code()
    yellow = make_assessed(region_code="320583", enterprise={"credit_code": code})
    batch = [make_assessed(region_code="320583", enterprise={"credit_code": code}, **RED),
             make_assessed(region_code="320583", **RED), make_assessed(region_code="320583", **RED)]
    await handle(alerts, [yellow])
    first = await handle(alerts, batch)
    assert all(ids for _, ids in first)
    before = await snapshot_of_tables(alerts)

    again = await handle(alerts, batch)
    partly = await handle(alerts, [batch[1], yellow])

    assert [ids for _, ids in again] == [[], [], []]
    assert [ids for _, ids in partly] == [[], []]
    assert await snapshot_of_tables(alerts) == before


async def red_batch(size: int, region: str) -> list[ReportAssessed]:
    return [make_assessed(region_code=region, **RED) for _ in range(size)]


async def test_a_batch_takes_the_same_number_of_statements_whatever_its_size(alerts: AlertsWorld) -> None:
    await alerts.body(region_code="320506")
    await alerts.body(kind="mediation_centre", region_code="320506")
    await alerts.body(level="city", region_code="320500")

    async def statements(events: Sequence[ReportAssessed]) -> int:
        with counted(alerts.db) as sent:
            await handle(alerts, events)
        return len(sent)

    # new enterprises: each report opens an alert
    opening = {size: await statements(await red_batch(size, "320506")) for size in (1, 4, 16)}
    # existing alerts: yellow ones raised to red, mixed with silent joins and new enterprises
    mixed: dict[int, int] = {}
    for size in (1, 4, 16):
        codes = [credit_code() for _ in range(size)]
        await handle(alerts, [make_assessed(region_code="320506", enterprise={"credit_code": c}) for c in codes])
        events = [make_assessed(region_code="320506", enterprise={"credit_code": c}, **RED) for c in codes]
        events += [make_assessed(region_code="320506", enterprise={"credit_code": c}) for c in codes]  # joins
        events += await red_batch(size, "320506")
        mixed[size] = await statements(events)
    redelivered = dict.fromkeys((1, 16), 0)
    for size in redelivered:
        events = await red_batch(size, "320506")
        await handle(alerts, events)
        redelivered[size] = await statements(events)

    assert opening[1] == opening[4] == opening[16]
    assert mixed[1] == mixed[4] == mixed[16]
    assert redelivered[1] == redelivered[16] == 1  # the consumed-event ledger says it all
    # the ledger with the reports, alerts locked, bodies, and one statement for the alerts, notifications,
    # deliveries and outbox rows
    assert opening[1] <= 4
    # and for raises: what the payloads list of the existing alerts (3 reads) and the update of the alerts
    assert mixed[1] <= 8


async def test_the_alerts_of_a_batch_are_seen_through_the_api(alerts: AlertsWorld) -> None:
    await alerts.body(region_code="320585")
    events = await red_batch(3, "320585")
    result = await handle(alerts, events)
    for _, (alert_id,) in result:
        detail = (await alerts.client.get(f"/v1/alerts/{alert_id}", headers=ADMIN)).json()
        assert detail["level"] == "red"
        assert detail["deliveries"]
        assert detail["ack_deadline"] is not None


async def test_two_assessments_of_one_report_in_a_batch_store_the_first_and_a_copy_stores_nothing(
        alerts: AlertsWorld) -> None:
    """The ledger and the assessed reports are written by one statement: a report's row is the first fresh
    assessment of the batch, a copy (an event recorded before) stores nothing, and a report stored before keeps
    its row."""
    first = make_assessed(region_code="320507", **RED)
    second = first.model_copy(update={"event_id": uuid.uuid4(), "score": first.score - 1})
    await handle(alerts, [first, second])
    scores = await alerts.rows("SELECT score FROM alerts.assessed_reports WHERE report_id = :r", r=first.report_id)
    assert [score for (score,) in scores] == [first.score]

    third = first.model_copy(update={"event_id": uuid.uuid4(), "score": first.score - 2})
    results = await handle(alerts, [second, third])  # a copy, and a new assessment of a stored report
    assert results[0][1] == []  # the copy changes nothing
    scores = await alerts.rows("SELECT score FROM alerts.assessed_reports WHERE report_id = :r", r=first.report_id)
    assert [score for (score,) in scores] == [first.score]
    ledger = await alerts.scalar("SELECT count(*) FROM alerts.processed_events WHERE event_id IN (:a, :b, :c)",
                                 a=str(first.event_id), b=str(second.event_id), c=str(third.event_id))
    assert ledger == 3
