"""Properties of scoring with task7-v1 that hold for any report: bounded, monotone, explained, deterministic."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.risk.scoring.engine import History, score_report
from services.risk.scoring.rubric import load_rubric
from shared.report import CollectiveAction, Report
from tests.risk.test_scoring import make_report

pytestmark = pytest.mark.unit

RUBRIC = load_rubric("task7-v1")
CRITERION_ORDER = [entry.id for entry in [*RUBRIC.criteria, *RUBRIC.floors]]


@st.composite
def reports(draw: st.DrawFn) -> Report:
    kind = draw(st.sampled_from(["dispute", "arrears", "stability"]))
    workers = draw(st.one_of(st.integers(1, 400), st.integers(1, 1_000_000)))
    options: dict[str, Any] = {
        "workers": workers,
        "migrant": draw(st.integers(0, min(workers, 50))),
        "actions": draw(st.frozensets(st.sampled_from([a.value for a in CollectiveAction]))),
        "petition": draw(st.sampled_from(["none", "local", "repeated", "skip_level"])),
        "extreme_threat": draw(st.booleans()),
        "online": draw(st.sampled_from(["none", "posted", "spreading", "trending", "media"])),
        "new_employment_form": draw(st.booleans()),
        "occurred_at": draw(st.datetimes(datetime(2020, 1, 1), datetime(2030, 12, 31), timezones=st.just(UTC))),
    }
    if kind == "arrears":
        options["amount"] = draw(st.floats(0, 20_000_000, allow_nan=False, allow_infinity=False))
        options["months"] = draw(st.integers(0, 120))
        options["absconded"] = draw(st.booleans())
    elif kind == "dispute":
        options["dispute_type"] = draw(st.sampled_from(["wages", "social_insurance", "termination", "overtime",
                                                        "work_injury", "collective_contract", "other"]))
        options["stage"] = draw(st.sampled_from(["negotiation", "mediation", "mediation_failed", "arbitration",
                                                 "litigation"]))
    else:
        options["event_type"] = draw(st.sampled_from(["closure", "bankruptcy", "relocation", "mass_layoff",
                                                      "restructuring", "social_insurance_arrears",
                                                      "platform_rule_change"]))
        options["layoff_without_consultation"] = draw(st.booleans())
    return make_report(kind, **options)


histories = st.builds(History, earlier_reports_in_90_days=st.integers(0, 20), open_alert=st.booleans())


@given(reports(), histories)
@settings(max_examples=300)
def test_score_is_between_0_and_100_with_its_level(report: Report, history: History) -> None:
    assessment = score_report(RUBRIC, report, history)
    assert 0 <= assessment.score <= 100
    assert assessment.level == RUBRIC.level_for(assessment.score)
    assert assessment.rubric_version == "task7-v1"


@given(reports(), histories)
@settings(max_examples=300)
def test_reasons_add_up_to_the_score_before_the_cap(report: Report, history: History) -> None:
    assessment = score_report(RUBRIC, report, history)
    uncapped = sum(reason.points for reason in assessment.reasons)
    assert assessment.score == min(uncapped, RUBRIC.cap)
    assert all(reason.points > 0 for reason in assessment.reasons)
    ids = [reason.criterion for reason in assessment.reasons]
    assert ids == sorted(ids, key=CRITERION_ORDER.index)
    assert all(reason.text_zh and reason.text_en for reason in assessment.reasons)


@given(reports(), histories, st.integers(1, 1000))
def test_more_workers_never_lowers_the_score(report: Report, history: History, more: int) -> None:
    bigger = report.model_copy(update={"workers_involved": min(report.workers_involved + more, 1_000_000)})
    assert score_report(RUBRIC, bigger, history).score >= score_report(RUBRIC, report, history).score


@given(reports(), histories, st.sampled_from(list(CollectiveAction)))
def test_adding_a_collective_action_never_lowers_the_score(
    report: Report, history: History, action: CollectiveAction
) -> None:
    louder = report.model_copy(update={"collective_action": report.collective_action | {action}})
    assert score_report(RUBRIC, louder, history).score >= score_report(RUBRIC, report, history).score


@given(reports(), histories)
def test_more_history_never_lowers_the_score(report: Report, history: History) -> None:
    more = History(history.earlier_reports_in_90_days + 1, open_alert=True)
    assert score_report(RUBRIC, report, more).score >= score_report(RUBRIC, report, history).score


@given(reports(), histories)
def test_scoring_is_deterministic(report: Report, history: History) -> None:
    again = Report.model_validate_json(report.model_dump_json())
    assert score_report(RUBRIC, report, history) == score_report(RUBRIC, again, history)
