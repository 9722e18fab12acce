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
from services.alerts.working_time import (
    RULE_CLOCK_HOURS,
    RULE_NEXT_WORKING_DAY,
    RULE_NEXT_WORKING_DAY_WEEKENDS_ONLY,
    SHANGHAI,
    AckDeadline,
    parse_calendar,
)
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

    assert decision == lifecycle.Escalate(body=expected, from_level=highest, deadline=AckDeadline(
        due_at=NOW + timedelta(hours=1), working_due_at=NOW + timedelta(hours=1), rule="clock_hours"))


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
    decision = lifecycle.on_acknowledge(alert(overdue=True), "b-county-union", notified=True,
                                        body_kind=BodyKind.union)

    assert decision == lifecycle.Acknowledge(body_id="b-county-union")
    acknowledged = replace(alert(overdue=True), state=AlertState.acknowledged)
    assert isinstance(lifecycle.on_deadline(acknowledged, BODIES, NOW, POLICY), lifecycle.Ignore)


def test_a_second_acknowledgement_is_a_no_op() -> None:
    confirmed = replace(alert(state=AlertState.acknowledged), confirmed_by=frozenset({"b-county-union"}))
    decision = lifecycle.on_acknowledge(confirmed, "b-county-union", notified=True, body_kind=BodyKind.union)

    assert decision == lifecycle.AlreadyDone()


@pytest.mark.parametrize("act", ["ack", "resolve"])
def test_a_resolved_alert_cannot_be_acknowledged_or_resolved_again(act: str) -> None:
    resolved = alert(state=AlertState.resolved)
    decision = (lifecycle.on_acknowledge(resolved, "b-county-union", notified=True, body_kind=BodyKind.union)
                if act == "ack" else
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
            return lifecycle.on_acknowledge(alert(), body_id, notified=notified, body_kind=BodyKind.union)
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


# --- receipts per body ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [BodyKind.union, BodyKind.mediation_centre])
def test_a_union_or_mediation_centre_receipt_acknowledges_the_alert(kind: BodyKind) -> None:
    decision = lifecycle.on_acknowledge(alert(overdue=True), "b-1", notified=True, body_kind=kind)

    assert decision == lifecycle.Acknowledge(body_id="b-1", stops_escalation=True)


@pytest.mark.parametrize("kind", [BodyKind.labour_inspection, BodyKind.arbitration, BodyKind.legal_aid])
def test_another_kind_of_body_is_recorded_but_escalation_goes_on(kind: BodyKind) -> None:
    overdue = alert(overdue=True)
    decision = lifecycle.on_acknowledge(overdue, "b-1", notified=True, body_kind=kind)

    assert decision == lifecycle.Acknowledge(body_id="b-1", stops_escalation=False)
    # the alert stays open: the deadline still escalates it
    after = replace(overdue, confirmed_by=frozenset({"b-1"}))
    assert isinstance(lifecycle.on_deadline(after, BODIES, NOW, POLICY), lifecycle.Escalate)


def test_a_receipt_on_an_acknowledged_alert_is_recorded_without_acknowledging_again() -> None:
    acknowledged = replace(alert(state=AlertState.acknowledged), confirmed_by=frozenset({"b-county-union"}))
    decision = lifecycle.on_acknowledge(acknowledged, "b-county-mediation", notified=True,
                                        body_kind=BodyKind.mediation_centre)

    assert decision == lifecycle.Acknowledge(body_id="b-county-mediation", stops_escalation=False)


def test_a_body_confirms_once_per_level_and_again_after_a_raise() -> None:
    confirmed = replace(alert(RiskLevel.orange), confirmed_by=frozenset({"b-county-union"}))
    assert lifecycle.on_acknowledge(confirmed, "b-county-union", notified=True,
                                    body_kind=BodyKind.union) == lifecycle.AlreadyDone()

    # a raise re-opens the alert at a level nobody has confirmed yet: the body is asked again
    raised = replace(confirmed, level=RiskLevel.red, state=AlertState.open, confirmed_by=frozenset())
    assert lifecycle.on_acknowledge(raised, "b-county-union", notified=True,
                                    body_kind=BodyKind.union) == lifecycle.Acknowledge(body_id="b-county-union")


def test_an_inspectorates_receipt_on_a_resolved_alert_conflicts() -> None:
    decision = lifecycle.on_acknowledge(alert(state=AlertState.resolved), "b-county-inspection", notified=True,
                                        body_kind=BodyKind.labour_inspection)

    assert decision == lifecycle.Conflict()
# --- acknowledgement deadlines in working time (issue 12) ----------------------------------------------------------


def shanghai(year: int, month: int, day: int, hour: int = 15, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=SHANGHAI)


def opened(level: RiskLevel, at: datetime, policy: Policy = POLICY) -> lifecycle.Open:
    decision = lifecycle.on_assessment(None, assessed(level), BODIES, at.astimezone(UTC), policy)
    assert isinstance(decision, lifecycle.Open)
    return decision


def overdue_at(level: RiskLevel, at: datetime) -> AlertSnapshot:
    """An open alert of `level` whose timer fired at `at`."""
    return replace(alert(level), ack_deadline=at.astimezone(UTC))


def deadline_of(decision: lifecycle.Open | lifecycle.RaiseLevel | lifecycle.Escalate) -> AckDeadline:
    assert decision.deadline is not None
    return decision.deadline


def test_a_yellow_alert_opened_on_friday_afternoon_is_due_on_monday_at_the_same_time() -> None:
    deadline = deadline_of(opened(RiskLevel.yellow, shanghai(2026, 3, 6)))  # Friday 15:00

    assert deadline.working_due_at == shanghai(2026, 3, 9)  # Monday 15:00, not Saturday
    assert deadline.rule == RULE_NEXT_WORKING_DAY
    assert deadline.due_at == deadline.working_due_at  # scale 1: the timer is the deadline


def test_a_yellow_alert_opened_on_the_eve_of_the_spring_festival_is_due_on_the_first_working_day_after() -> None:
    # 2026-02-14 (Saturday) is a makeup working day; the break runs 02-15 to 02-23.
    eve = deadline_of(opened(RiskLevel.yellow, shanghai(2026, 2, 14, 11, 20)))
    friday_before = deadline_of(opened(RiskLevel.yellow, shanghai(2026, 2, 13, 9, 0)))

    assert eve.working_due_at == shanghai(2026, 2, 24, 11, 20)
    assert eve.rule == RULE_NEXT_WORKING_DAY
    assert friday_before.working_due_at == shanghai(2026, 2, 14, 9, 0)  # the makeup Saturday is a working day


def test_a_yellow_alert_in_a_year_the_calendar_does_not_cover_counts_weekends_only() -> None:
    uncovered = 1 + max(POLICY.calendar.sources)
    friday = next(shanghai(uncovered, 1, day) for day in range(1, 8) if shanghai(uncovered, 1, day).weekday() == 4)

    deadline = deadline_of(opened(RiskLevel.yellow, friday))

    assert deadline.working_due_at == friday + timedelta(days=3)
    assert deadline.rule == RULE_NEXT_WORKING_DAY_WEEKENDS_ONLY


def test_the_calendar_comes_from_the_policy() -> None:
    calendar = parse_calendar({"years": {2026: {"source": "test", "holidays": [{"from": "2026-03-09",
                                                                               "to": "2026-03-09"}]}}})

    deadline = deadline_of(opened(RiskLevel.yellow, shanghai(2026, 3, 6), replace(POLICY, calendar=calendar)))

    assert deadline.working_due_at == shanghai(2026, 3, 10)  # Monday is a holiday in this calendar


def test_the_scale_shortens_the_timer_not_the_deadline_shown() -> None:
    scaled = replace(POLICY, deadline_scale=0.002)

    decision = opened(RiskLevel.yellow, shanghai(2026, 3, 6), scaled)

    assert deadline_of(decision).working_due_at == shanghai(2026, 3, 9)
    assert decision.ack_deadline == shanghai(2026, 3, 6) + timedelta(hours=72) * 0.002  # 8.64 minutes


def test_an_escalated_yellow_alert_restarts_under_the_same_rule_from_the_escalation_time() -> None:
    escalated_at = shanghai(2026, 9, 30, 16, 45)  # the eve of the National Day break (10-01 to 10-07)
    overdue = overdue_at(RiskLevel.yellow, escalated_at)

    decision = lifecycle.on_deadline(overdue, BODIES, escalated_at.astimezone(UTC), POLICY)
    scaled = lifecycle.on_deadline(overdue, BODIES, escalated_at.astimezone(UTC), replace(POLICY,
                                                                                          deadline_scale=0.01))

    assert isinstance(decision, lifecycle.Escalate)
    assert deadline_of(decision).working_due_at == shanghai(2026, 10, 8, 16, 45)
    assert deadline_of(decision).rule == RULE_NEXT_WORKING_DAY
    assert isinstance(scaled, lifecycle.Escalate)
    assert deadline_of(scaled).working_due_at == shanghai(2026, 10, 8, 16, 45)
    assert scaled.ack_deadline == escalated_at + (shanghai(2026, 10, 8, 16, 45) - escalated_at) * 0.01


@pytest.mark.parametrize(("level", "hours"), [(RiskLevel.red, 1), (RiskLevel.orange, 4)])
@pytest.mark.parametrize("at", [shanghai(2026, 3, 6, 23, 30), shanghai(2026, 2, 15, 3, 0), shanghai(2026, 10, 3)],
                         ids=["friday-night", "spring-festival", "national-day"])
def test_red_and_orange_run_on_the_clock_day_and_night_holidays_included(level: RiskLevel, hours: int,
                                                                          at: datetime) -> None:
    deadline = deadline_of(opened(level, at))
    escalated = lifecycle.on_deadline(overdue_at(level, at), BODIES, at.astimezone(UTC), POLICY)

    assert deadline.working_due_at == deadline.due_at == at + timedelta(hours=hours)
    assert deadline.rule == RULE_CLOCK_HOURS
    assert isinstance(escalated, lifecycle.Escalate)
    assert deadline_of(escalated) == AckDeadline(due_at=at + timedelta(hours=hours),
                                                 working_due_at=at + timedelta(hours=hours), rule=RULE_CLOCK_HOURS)


def test_raising_a_yellow_alert_to_orange_on_a_friday_evening_sets_a_clock_deadline() -> None:
    friday_evening = shanghai(2026, 3, 6, 20, 0)

    decision = lifecycle.on_assessment(alert(RiskLevel.yellow), assessed(RiskLevel.orange), BODIES,
                                       friday_evening.astimezone(UTC), POLICY)

    assert isinstance(decision, lifecycle.RaiseLevel)
    assert deadline_of(decision) == AckDeadline(due_at=friday_evening + timedelta(hours=4),
                                                working_due_at=friday_evening + timedelta(hours=4),
                                                rule=RULE_CLOCK_HOURS)
