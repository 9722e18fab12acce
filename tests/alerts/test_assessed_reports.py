"""The alerts consumer keeps every assessed report it sees (any level), once per report id, and not re-score
replays: the rows behind the alert detail, the situation counts and the watch list."""

from __future__ import annotations

import json

import pytest

from tests.alerts.conftest import AlertsWorld, make_assessed

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]


async def _row(alerts: AlertsWorld, report_id: str) -> dict[str, object]:
    rows = await alerts.rows("SELECT * FROM alerts.assessed_reports WHERE report_id = :r", r=report_id)
    assert len(rows) == 1
    return dict(rows[0]._mapping)


async def test_every_level_is_kept_with_its_columns_and_details(alerts: AlertsWorld) -> None:
    low = make_assessed(region_code="320582", workers_involved=3, migrant_workers_involved=0,
                        arrears={"amount_owed_cny": 1200.0, "months_overdue": 1})
    red = make_assessed(region_code="320106", workers_involved=320, collective_action=["road_blocking", "gathering"],
                        petition="repeated")
    dispute = make_assessed(kind="dispute", region_code="320211")
    await alerts.publish(low, red, dispute)
    for event in (low, red, dispute):
        await alerts.processed(event)

    row = await _row(alerts, low.report_id)
    assert row["level"] == low.level.value
    assert low.level.value in {"blue", "none"}
    assert row["score"] == low.score
    assert row["region_code"] == "320582"
    assert row["city_code"] == "320500"
    assert row["credit_code"] == low.report.enterprise.credit_code
    assert row["enterprise_name"] == low.report.enterprise.name
    assert row["industry"] == "E"
    assert row["kind"] == "arrears"
    assert row["workers_involved"] == 3
    assert row["migrant_workers_involved"] == 0
    assert row["occurred_at"] == low.report.occurred_at
    assert row["accepted_at"] == low.accepted_at
    assert row["assessed_at"] == low.assessed_at
    details = row["details"]
    assert isinstance(details, dict)
    assert details["arrears"]["amount_owed_cny"] == 1200.0
    assert details["arrears"]["months_overdue"] == 1
    assert details["summary"] == low.report.summary
    assert details["collective_action"] == []
    assert details["petition"] == "none"
    assert "dispute" not in details
    assert "stability" not in details
    assert row["reasons"] == [reason.model_dump(mode="json") for reason in low.reasons]

    row = await _row(alerts, red.report_id)
    assert row["level"] == "red"
    assert row["details"]["collective_action"] == ["gathering", "road_blocking"]  # type: ignore[index]
    assert row["details"]["petition"] == "repeated"  # type: ignore[index]

    row = await _row(alerts, dispute.report_id)
    assert row["kind"] == "dispute"
    assert row["city_code"] == "320200"
    assert set(row["details"]["dispute"]) == {"dispute_type", "stage"}  # type: ignore[arg-type,index]
    assert "arrears" not in row["details"]  # type: ignore[operator]
    assert "contact" not in json.dumps(row["details"], ensure_ascii=False)


async def test_a_report_is_kept_once_and_a_replay_not_at_all(alerts: AlertsWorld) -> None:
    first = make_assessed(region_code="320903")
    again = first.model_copy(update={"event_id": first.event_id.__class__(int=first.event_id.int ^ 1),
                                     "score": 1})  # another event for the same report
    replay = make_assessed(region_code="320903").model_copy(update={"replay": True})
    await alerts.publish(first, first, again, replay)
    for event in (first, again, replay):
        await alerts.processed(event)

    assert await alerts.scalar("SELECT count(*) FROM alerts.assessed_reports WHERE report_id = :r",
                               r=first.report_id) == 1
    assert (await _row(alerts, first.report_id))["score"] == first.score
    assert await alerts.scalar("SELECT count(*) FROM alerts.assessed_reports WHERE report_id = :r",
                               r=replay.report_id) == 0
