"""Every rule of the alert lifecycle (TASK7.md "Alert lifecycle, dedup and escalation", "Bodies and routing") on the
pure decisions of `services/alerts/lifecycle.py`: no servers, no database, no clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.alerts import lifecycle
from services.alerts.lifecycle import AlertSnapshot, Assessed, Policy
from services.alerts.routing import BodyKind, BodyLevel, BodyRef, load_routing
from shared.events import AlertState, RiskLevel
from shared.report import Report
from tests.factories import make_report_body

pytestmark = pytest.mark.unit

NOW = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
POLICY = Policy(routing=load_routing(), deadline_scale=1.0, join_window=timedelta(days=7),
                inbox_url="http://alerts.example/inbox")
DEADLINES = {RiskLevel.red: 3600, RiskLevel.orange: 4 * 3600, RiskLevel.yellow: 86400}

COUNTY_UNION = BodyRef("b-county-union", BodyKind.union, BodyLevel.county, "320106")
CITY_UNION = BodyRef("b-city-union", BodyKind.union, BodyLevel.city, "320100")
PROVINCE_UNION = BodyRef("b-province-union", BodyKind.union, BodyLevel.province, "320000")
COUNTY_MEDIATION = BodyRef("b-county-mediation", BodyKind.mediation_centre, BodyLevel.county, "320106")
COUNTY_INSPECTION = BodyRef("b-county-inspection", BodyKind.labour_inspection, BodyLevel.county, "320106")
COUNTY_ARBITRATION = BodyRef("b-county-arbitration", BodyKind.arbitration, BodyLevel.county, "320106")
BODIES = [COUNTY_UNION, CITY_UNION, PROVINCE_UNION, COUNTY_MEDIATION, COUNTY_INSPECTION, COUNTY_ARBITRATION]


def report(**overrides: Any) -> Report:
    body = make_report_body(region_code="320106", **overrides)
    body.pop("contact", None)
    return Report.model_validate(body)


def assessed(level: RiskLevel, *, report_id: str = "r-new", replay: bool = False, **overrides: Any) -> Assessed:
    return Assessed(report_id=report_id, level=level, report=report(**overrides),
                    ack_deadline_seconds=DEADLINES.get(level), replay=replay)


def alert(level: RiskLevel = RiskLevel.yellow, *, state: AlertState = AlertState.open,
          updated: timedelta = timedelta(hours=1), union: BodyLevel | None = BodyLevel.county,
          overdue: bool = False, exhausted: bool = False) -> AlertSnapshot:
    deadline_seconds = DEADLINES.get(level)
    return AlertSnapshot(
        level=level, state=state, report_ids=("r-1",), updated_at=NOW - updated, region_code="320106",
        deadline_seconds=deadline_seconds,
        ack_deadline=NOW - timedelta(seconds=1) if overdue else NOW + timedelta(minutes=30),
        escalation_exhausted=exhausted, highest_union_level=union,
    )


def ids(bodies: tuple[BodyRef, ...]) -> list[str]:
    return [body.body_id for body in bodies]


# --- opening and routing -------------------------------------------------------------------------------------------


def test_a_red_arrears_report_opens_an_alert_to_the_routing_table_targets() -> None:
    decision = lifecycle.on_assessment(None, assessed(RiskLevel.red), BODIES, NOW, POLICY)

    assert isinstance(decision, lifecycle.Open)
    assert decision.level == RiskLevel.red
    assert ids(decision.targets) == [COUNTY_UNION.body_id, CITY_UNION.body_id, COUNTY_MEDIATION.body_id,
                                     COUNTY_INSPECTION.body_id]
    assert decision.ack_deadline == NOW + timedelta(hours=1)
    assert decision.highest_union_level == BodyLevel.city


def test_orange_reaches_arbitration_only_for_a_failed_mediation_dispute() -> None:
    failed = assessed(RiskLevel.orange, kind="dispute", dispute={"dispute_type": "wages", "stage": "mediation_failed"})
    other = assessed(RiskLevel.orange, kind="dispute", dispute={"dispute_type": "wages", "stage": "mediation"})

    with_arbitration = lifecycle.on_assessment(None, failed, BODIES, NOW, POLICY)
    without = lifecycle.on_assessment(None, other, BODIES, NOW, POLICY)

    assert isinstance(with_arbitration, lifecycle.Open)
    assert isinstance(without, lifecycle.Open)
    assert ids(with_arbitration.targets) == [COUNTY_UNION.body_id, COUNTY_MEDIATION.body_id,
                                             COUNTY_ARBITRATION.body_id]
    assert ids(without.targets) == [COUNTY_UNION.body_id, COUNTY_MEDIATION.body_id]


def test_a_missing_county_body_falls_back_one_level_up_and_each_body_is_notified_once() -> None:
    # red targets union at county AND city: with no county union both pairs resolve to the city union
    bodies = [CITY_UNION, PROVINCE_UNION, COUNTY_MEDIATION]

    decision = lifecycle.on_assessment(None, assessed(RiskLevel.red), bodies, NOW, POLICY)

    assert isinstance(decision, lifecycle.Open)
    assert ids(decision.targets) == [CITY_UNION.body_id, COUNTY_MEDIATION.body_id]


def test_an_alert_with_no_covering_body_still_opens_with_nobody_to_notify() -> None:
    decision = lifecycle.on_assessment(None, assessed(RiskLevel.yellow), [], NOW, POLICY)

    assert isinstance(decision, lifecycle.Open)
    assert decision.targets == ()
    assert decision.highest_union_level is None


@pytest.mark.parametrize("level", [RiskLevel.blue, RiskLevel.none])
def test_blue_and_none_never_open_an_alert(level: RiskLevel) -> None:
    decision = lifecycle.on_assessment(None, assessed(level), BODIES, NOW, POLICY)

    assert isinstance(decision, lifecycle.Ignore)


def test_a_what_if_replay_changes_nothing() -> None:
    assert isinstance(lifecycle.on_assessment(None, assessed(RiskLevel.red, replay=True), BODIES, NOW, POLICY),
                      lifecycle.Ignore)
    assert isinstance(lifecycle.on_assessment(alert(), assessed(RiskLevel.red, replay=True), BODIES, NOW, POLICY),
                      lifecycle.Ignore)


# --- one unresolved alert per (credit_code, kind): joining ---------------------------------------------------------


@pytest.mark.parametrize("level", list(RiskLevel))
def test_with_an_unresolved_alert_in_the_window_a_report_never_opens_another(level: RiskLevel) -> None:
    for state in (AlertState.open, AlertState.acknowledged):
        decision = lifecycle.on_assessment(alert(RiskLevel.yellow, state=state), assessed(level), BODIES, NOW, POLICY)
        assert isinstance(decision, lifecycle.Join | lifecycle.RaiseLevel)


@pytest.mark.parametrize("level", [RiskLevel.yellow, RiskLevel.blue, RiskLevel.none])
def test_a_report_not_above_the_alert_level_joins_silently(level: RiskLevel) -> None:
    decision = lifecycle.on_assessment(alert(RiskLevel.yellow), assessed(level), BODIES, NOW, POLICY)

    assert decision == lifecycle.Join()


def test_the_level_is_the_highest_of_the_reports_a_lower_report_does_not_lower_it() -> None:
    decision = lifecycle.on_assessment(alert(RiskLevel.orange), assessed(RiskLevel.yellow), BODIES, NOW, POLICY)

    assert decision == lifecycle.Join()  # joins; the alert keeps orange


def test_a_report_already_joined_is_not_joined_twice() -> None:
    decision = lifecycle.on_assessment(alert(), assessed(RiskLevel.red, report_id="r-1"), BODIES, NOW, POLICY)

    assert isinstance(decision, lifecycle.Ignore)


def test_a_higher_report_raises_the_level_and_notifies_every_target_of_the_new_level_including_earlier_ones() -> None:
    decision = lifecycle.on_assessment(alert(RiskLevel.yellow, state=AlertState.acknowledged),
                                       assessed(RiskLevel.red), BODIES, NOW, POLICY)

    assert isinstance(decision, lifecycle.RaiseLevel)
    assert decision.level == RiskLevel.red
    # the county union and the county mediation centre heard of the yellow alert: they hear again
    assert ids(decision.targets) == [COUNTY_UNION.body_id, CITY_UNION.body_id, COUNTY_MEDIATION.body_id,
                                     COUNTY_INSPECTION.body_id]
    assert decision.ack_deadline == NOW + timedelta(hours=1)  # the deadline of the new level, re-armed from now
    assert decision.highest_union_level == BodyLevel.city


def test_a_raise_keeps_the_highest_union_level_reached_by_escalation() -> None:
    decision = lifecycle.on_assessment(alert(RiskLevel.yellow, union=BodyLevel.province),
                                       assessed(RiskLevel.orange), BODIES, NOW, POLICY)

    assert isinstance(decision, lifecycle.RaiseLevel)
    assert decision.highest_union_level == BodyLevel.province


# --- the join window -----------------------------------------------------------------------------------------------


def test_a_report_exactly_at_the_end_of_the_join_window_still_joins() -> None:
    decision = lifecycle.on_assessment(alert(updated=timedelta(days=7)), assessed(RiskLevel.yellow), BODIES, NOW,
                                       POLICY)

    assert decision == lifecycle.Join()


def test_after_the_join_window_the_alert_expires_and_the_report_opens_a_new_one() -> None:
    decision = lifecycle.on_assessment(alert(RiskLevel.red, updated=timedelta(days=7, seconds=1)),
                                       assessed(RiskLevel.yellow), BODIES, NOW, POLICY)

    assert isinstance(decision, lifecycle.Expire)
    assert isinstance(decision.then, lifecycle.Open)
    assert decision.then.level == RiskLevel.yellow  # a fresh alert: the old level does not carry over
    assert ids(decision.then.targets) == [COUNTY_UNION.body_id, COUNTY_MEDIATION.body_id]


@pytest.mark.parametrize("level", [RiskLevel.blue, RiskLevel.none])
def test_after_the_join_window_a_blue_report_closes_the_old_alert_and_opens_nothing(level: RiskLevel) -> None:
    decision = lifecycle.on_assessment(alert(updated=timedelta(days=8)), assessed(level), BODIES, NOW, POLICY)

    assert decision == lifecycle.Expire(then=None)


def test_the_expired_note_names_the_join_window_zh_first() -> None:
    note = POLICY.expired_note()
    assert note.index("7 天") < note.index("7 days")
    assert lifecycle.EXPIRED_OUTCOME == "expired"


# --- escalation ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("highest", "expected"), [
    (None, COUNTY_UNION), (BodyLevel.county, CITY_UNION), (BodyLevel.city, PROVINCE_UNION),
])
def test_escalation_goes_to_the_union_one_level_above_the_highest_notified(highest: BodyLevel | None,
                                                                            expected: BodyRef) -> None:
    decision = lifecycle.on_deadline(alert(RiskLevel.red, union=highest, overdue=True), BODIES, NOW, POLICY)

    assert decision == lifecycle.Escalate(body=expected, from_level=highest, ack_deadline=NOW + timedelta(hours=1))


def test_escalation_restarts_the_deadline_scaled_like_every_deadline() -> None:
    scaled = replace(POLICY, deadline_scale=0.002)

    decision = lifecycle.on_deadline(alert(RiskLevel.red, overdue=True), BODIES, NOW, scaled)

    assert isinstance(decision, lifecycle.Escalate)
    assert decision.ack_deadline == NOW + timedelta(seconds=7.2)


def test_escalation_skips_a_level_without_a_union_body() -> None:
    decision = lifecycle.on_deadline(alert(overdue=True), [COUNTY_UNION, PROVINCE_UNION], NOW, POLICY)

    assert isinstance(decision, lifecycle.Escalate)
    assert decision.body == PROVINCE_UNION


def test_there_is_no_escalation_above_province() -> None:
    decision = lifecycle.on_deadline(alert(union=BodyLevel.province, overdue=True), BODIES, NOW, POLICY)

    assert decision == lifecycle.Exhausted()


def test_escalation_is_exhausted_when_nobody_covers_above() -> None:
    decision = lifecycle.on_deadline(alert(union=BodyLevel.county, overdue=True), [COUNTY_UNION], NOW, POLICY)

    assert decision == lifecycle.Exhausted()


@pytest.mark.parametrize("snapshot", [
    alert(overdue=False),
    alert(state=AlertState.acknowledged, overdue=True),
    alert(state=AlertState.resolved, overdue=True),
    alert(overdue=True, exhausted=True),
])
def test_only_an_open_overdue_alert_escalates(snapshot: AlertSnapshot) -> None:
    assert isinstance(lifecycle.on_deadline(snapshot, BODIES, NOW, POLICY), lifecycle.Ignore)


def test_the_highest_union_level_counts_only_unions() -> None:
    assert lifecycle.highest_union_level(None, [COUNTY_MEDIATION, COUNTY_INSPECTION]) is None
    assert lifecycle.highest_union_level(None, [CITY_UNION, COUNTY_UNION]) == BodyLevel.city
    assert lifecycle.highest_union_level(BodyLevel.province, [COUNTY_UNION]) == BodyLevel.province


# --- acknowledge and resolve ---------------------------------------------------------------------------------------


def test_acknowledging_an_open_alert_stops_escalation() -> None:
    decision = lifecycle.on_acknowledge(alert(overdue=True), "b-county-union", notified=True)

    assert decision == lifecycle.Acknowledge(body_id="b-county-union")
    acknowledged = replace(alert(overdue=True), state=AlertState.acknowledged)
    assert isinstance(lifecycle.on_deadline(acknowledged, BODIES, NOW, POLICY), lifecycle.Ignore)


def test_a_second_acknowledgement_is_a_no_op() -> None:
    decision = lifecycle.on_acknowledge(alert(state=AlertState.acknowledged), "b-county-union", notified=True)

    assert decision == lifecycle.AlreadyDone()


@pytest.mark.parametrize("act", ["ack", "resolve"])
def test_a_resolved_alert_cannot_be_acknowledged_or_resolved_again(act: str) -> None:
    resolved = alert(state=AlertState.resolved)
    decision = (lifecycle.on_acknowledge(resolved, "b-county-union", notified=True) if act == "ack" else
                lifecycle.on_resolve(resolved, "b-county-union", notified=True, outcome="paid", note="done"))

    assert decision == lifecycle.Conflict()


@pytest.mark.parametrize("state", [AlertState.open, AlertState.acknowledged])
def test_a_notified_body_resolves_an_open_or_acknowledged_alert(state: AlertState) -> None:
    decision = lifecycle.on_resolve(alert(state=state), "b-county-union", notified=True, outcome="mediated",
                                    note="调解成功 / mediated")

    assert decision == lifecycle.Close(body_id="b-county-union", outcome="mediated", note="调解成功 / mediated")


@pytest.mark.parametrize("act", ["ack", "resolve"])
def test_only_a_notified_body_acts_on_an_alert(act: str) -> None:
    def decide(body_id: str | None, notified: bool) -> lifecycle.ActionDecision:
        if act == "ack":
            return lifecycle.on_acknowledge(alert(), body_id, notified=notified)
        return lifecycle.on_resolve(alert(), body_id, notified=notified, outcome="other", note="n")

    assert decide(None, False) == lifecycle.NotAllowed()  # the admin acts on no alert
    assert decide("b-stranger", False) == lifecycle.NotVisible()  # for a body never told, the alert does not exist


@pytest.mark.parametrize(("snapshot", "event"), [
    (None, assessed(RiskLevel.red)),
    (None, assessed(RiskLevel.blue)),
    (None, assessed(RiskLevel.red, replay=True)),
    (alert(RiskLevel.yellow), assessed(RiskLevel.yellow)),
    (alert(RiskLevel.yellow), assessed(RiskLevel.red)),
    (alert(RiskLevel.yellow), assessed(RiskLevel.red, report_id="r-1")),
    (alert(RiskLevel.red, updated=timedelta(days=8)), assessed(RiskLevel.yellow)),
    (alert(RiskLevel.red, updated=timedelta(days=8)), assessed(RiskLevel.none)),
])
def test_the_bodies_are_needed_exactly_when_the_decision_routes(snapshot: AlertSnapshot | None,
                                                               event: Assessed) -> None:
    with_bodies = lifecycle.on_assessment(snapshot, event, BODIES, NOW, POLICY)
    without = lifecycle.on_assessment(snapshot, event, [], NOW, POLICY)

    routes = with_bodies != without
    assert lifecycle.needs_targets(snapshot, event, NOW, POLICY) == routes
