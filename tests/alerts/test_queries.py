"""How many SQL statements reading alerts takes: a page costs the same number of queries whatever its size (no
query per alert), and one request uses one session for authentication and the route."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.alerts import service
from services.alerts.schemas import AlertFilters
from shared.auth import ADMIN, Caller
from tests.alerts.conftest import AlertsWorld, make_assessed
from tests.support.statements import counted

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

RED = {"workers_involved": 320, "collective_action": ["road_blocking"]}



async def test_a_page_of_alerts_takes_the_same_number_of_queries_whatever_its_size(alerts: AlertsWorld) -> None:
    union = await alerts.body(region_code="440305")
    await alerts.body(level="city", region_code="440300")
    events = [make_assessed(region_code="440305", **RED) for _ in range(6)]
    await alerts.publish(*events)
    for assessed in events:
        await alerts.alert_for(assessed.report_id)
    body = Caller(union["body_id"])

    counts: dict[tuple[str, int], int] = {}
    for caller_name, caller in (("admin", ADMIN), ("body", body)):
        for limit in (1, 3, 6):
            async with AsyncSession(alerts.db) as session:
                with counted(alerts.db) as statements:
                    page = await service.list_alerts(session, caller, AlertFilters(), limit=limit, cursor=None)
            assert len(page.items) == limit
            assert all(item.notified for item in page.items)
            counts[(caller_name, limit)] = len(statements)

    assert counts[("admin", 1)] == counts[("admin", 3)] == counts[("admin", 6)]
    assert counts[("body", 1)] == counts[("body", 3)] == counts[("body", 6)]
    assert counts[("admin", 6)] <= 4  # the page, its notifications, its escalations


async def test_an_alert_with_its_deliveries_takes_a_fixed_number_of_queries(alerts: AlertsWorld) -> None:
    union = await alerts.body(region_code="440106")
    events = [make_assessed(region_code="440106", **RED)]
    await alerts.publish(*events)
    alert = await alerts.alert_for(events[0].report_id)

    policy = alerts.client._transport.app.state.context.policy  # type: ignore[attr-defined]
    async with AsyncSession(alerts.db) as session:
        with counted(alerts.db) as statements:
            detail = await service.get_alert(session, alert["alert_id"], Caller(union["body_id"]), policy)

    assert detail.deliveries
    assert detail.notified
    assert detail.reports
    assert detail.timeline
    # the alert; its notifications with the bodies' names (visibility is read from them), escalations, receipts,
    # deliveries and reports: the timeline is built from those
    assert len(statements) <= 6


async def test_the_detail_takes_the_same_number_of_queries_however_much_happened(alerts: AlertsWorld) -> None:
    union = await alerts.body(region_code="440107")
    inspection = await alerts.body(kind="labour_inspection", region_code="440107")
    small = make_assessed(region_code="440107", **RED)
    first = make_assessed(region_code="440107", petition="repeated")
    await alerts.publish(small, first)
    small_alert = await alerts.alert_for(small.report_id)
    big_alert = await alerts.alert_for(first.report_id)
    more = [make_assessed(region_code="440107", enterprise={"credit_code": first.report.enterprise.credit_code},
                          **overrides) for overrides in ({}, RED, {})]
    await alerts.publish(*more)
    await alerts.alert_for(more[-1].report_id)
    for body in (union, inspection):
        response = await alerts.client.post(f"/v1/alerts/{big_alert['alert_id']}/ack",
                                            headers={"Authorization": body["auth"]}, json={"person": "林峰"})
        assert response.status_code == 200

    policy = alerts.client._transport.app.state.context.policy  # type: ignore[attr-defined]
    counts = {}
    for alert in (small_alert, big_alert):
        async with AsyncSession(alerts.db) as session:
            with counted(alerts.db) as statements:
                detail = await service.get_alert(session, alert["alert_id"], Caller(union["body_id"]), policy)
        counts[alert["alert_id"]] = (len(statements), len(detail.reports), len(detail.acknowledgements))

    assert counts[small_alert["alert_id"]][1:] == (1, 0)
    assert counts[big_alert["alert_id"]][1:] == (4, 2)
    assert counts[small_alert["alert_id"]][0] == counts[big_alert["alert_id"]][0]


async def test_one_request_uses_one_connection_for_authentication_and_the_route(alerts: AlertsWorld) -> None:
    union = await alerts.body(region_code="440403")
    assessed = make_assessed(region_code="440403", **RED)
    await alerts.publish(assessed)
    alert = await alerts.alert_for(assessed.report_id)
    engine: AsyncEngine = alerts.client._transport.app.state.context.engine  # type: ignore[attr-defined]
    request_task = asyncio.current_task()  # the in-process app answers in the caller's task; workers have their own
    checkouts: list[int] = []

    def on_checkout(*_: Any) -> None:
        if asyncio.current_task() is request_task:
            checkouts.append(1)

    event.listen(engine.sync_engine.pool, "checkout", on_checkout)
    try:
        detail = await alerts.client.get(f"/v1/alerts/{alert['alert_id']}", headers={"Authorization": union["auth"]})
        acknowledged = await alerts.client.post(f"/v1/alerts/{alert['alert_id']}/ack",
                                                headers={"Authorization": union["auth"]}, json={"person": "陈刚"})
    finally:
        event.remove(engine.sync_engine.pool, "checkout", on_checkout)

    assert detail.status_code == 200
    assert acknowledged.json()["state"] == "acknowledged"
    assert len(checkouts) == 2  # one per request: the token lookup and the route share the request's session
