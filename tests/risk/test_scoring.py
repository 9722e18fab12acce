"""The Task 7 rubric (task7-v1) scored by the engine: every criterion at its boundaries, the floors, the cap, levels."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import pytest

from services.risk.scoring.engine import Assessment, History, score_report
from services.risk.scoring.rubric import Rubric, load_rubric
from shared.events import RiskLevel
from shared.report import Report

pytestmark = pytest.mark.unit

_CREDIT_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def credit_code(stem: str = "91320100MA1XXXXXX") -> str:
    """A unified social credit code with a valid GB 32100 check character after the 17-character stem."""
    total = sum(_CREDIT_CHARS.index(char) * weight for char, weight in zip(stem, _CREDIT_WEIGHTS, strict=True))
    return stem + _CREDIT_CHARS[(31 - total % 31) % 31]


CREDIT_CODE = credit_code()
SUMMER = datetime(2026, 6, 1, 2, 0, tzinfo=UTC)


def make_report(
    kind: str = "dispute",
    *,
    workers: int = 1,
    migrant: int = 0,
    actions: Iterable[str] = (),
    petition: str = "none",
    extreme_threat: bool = False,
    online: str = "none",
    new_employment_form: bool = False,
    occurred_at: datetime = SUMMER,
    amount: float = 0,
    months: int = 0,
    absconded: bool = False,
    dispute_type: str = "other",
    stage: str = "negotiation",
    event_type: str = "restructuring",
    layoff_without_consultation: bool = False,
) -> Report:
    """A valid report; the defaults give no points except the stability event (which has no zero option)."""
    blocks: dict[str, Any] = {
        "arrears": {"amount_owed_cny": amount, "months_overdue": months, "employer_absconded": absconded},
        "dispute": {"dispute_type": dispute_type, "stage": stage},
        "stability": {"event_type": event_type, "layoff_without_consultation": layoff_without_consultation},
    }
    return Report.model_validate({
        "kind": kind,
        "occurred_at": occurred_at,
        "region_code": "320102",
        "enterprise": {"name": "南京某建筑劳务有限公司", "credit_code": CREDIT_CODE, "industry": "E",
                       "ownership": "private"},
        "workers_involved": workers,
        "migrant_workers_involved": migrant,
        "collective_action": frozenset(actions),
        "petition": petition,
        "extreme_threat": extreme_threat,
        "online_exposure": online,
        "new_employment_form": new_employment_form,
        "summary": "测试报告 / test report",
        kind: blocks[kind],
    })


@pytest.fixture(scope="module")
def rubric() -> Rubric:
    return load_rubric("task7-v1")


def points_of(assessment: Assessment, criterion: str) -> int:
    return sum(reason.points for reason in assessment.reasons if reason.criterion == criterion)


def test_credit_code_helper_matches_a_known_valid_code() -> None:
    assert credit_code("91350100M000100Y4") == "91350100M000100Y43"


# --- criteria at their boundaries --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("workers", "points"),
    [(1, 0), (2, 0), (3, 3), (9, 3), (10, 8), (29, 8), (30, 15), (99, 15), (100, 25), (299, 25), (300, 30),
     (1_000_000, 30)],
)
def test_c1_scale_bands(rubric: Rubric, workers: int, points: int) -> None:
    assert points_of(score_report(rubric, make_report(workers=workers)), "C1") == points


@pytest.mark.parametrize(
    ("actions", "points"),
    [
        ((), 0),
        (("gathering",), 10),
        (("work_stoppage",), 12),
        (("road_blocking",), 15),
        (("occupation",), 15),
        (("gathering", "work_stoppage"), 22),
        (("gathering", "road_blocking"), 25),
        (("road_blocking", "occupation"), 25),
        (("gathering", "work_stoppage", "road_blocking", "occupation"), 25),
    ],
)
def test_c2_collective_action_sums_distinct_kinds_capped_at_25(
    rubric: Rubric, actions: tuple[str, ...], points: int
) -> None:
    assert points_of(score_report(rubric, make_report(actions=actions)), "C2") == points


@pytest.mark.parametrize(("petition", "points"), [("none", 0), ("local", 5), ("repeated", 10), ("skip_level", 15)])
def test_c3_petition(rubric: Rubric, petition: str, points: int) -> None:
    assert points_of(score_report(rubric, make_report(petition=petition)), "C3") == points


@pytest.mark.parametrize(("flag", "points"), [(False, 0), (True, 25)])
def test_c4_extreme_threat(rubric: Rubric, flag: bool, points: int) -> None:
    assert points_of(score_report(rubric, make_report(extreme_threat=flag)), "C4") == points


@pytest.mark.parametrize(
    ("online", "points"), [("none", 0), ("posted", 3), ("spreading", 8), ("trending", 12), ("media", 12)]
)
def test_c5_online_exposure(rubric: Rubric, online: str, points: int) -> None:
    assert points_of(score_report(rubric, make_report(online=online)), "C5") == points


@pytest.mark.parametrize(
    ("amount", "points"),
    [(0, 0), (0.01, 3), (99_999.99, 3), (100_000, 8), (999_999, 8), (1_000_000, 15), (4_999_999, 15),
     (5_000_000, 20), (80_000_000, 20)],
)
def test_c6_arrears_amount(rubric: Rubric, amount: float, points: int) -> None:
    assert points_of(score_report(rubric, make_report("arrears", amount=amount)), "C6") == points


@pytest.mark.parametrize(("months", "points"), [(0, 0), (1, 3), (2, 8), (3, 12), (120, 12)])
def test_c7_arrears_duration(rubric: Rubric, months: int, points: int) -> None:
    assert points_of(score_report(rubric, make_report("arrears", months=months)), "C7") == points


@pytest.mark.parametrize(("migrant", "points"), [(0, 0), (9, 0), (10, 5), (50, 5)])
def test_c8_migrant_workers(rubric: Rubric, migrant: int, points: int) -> None:
    report = make_report(workers=50, migrant=migrant)
    assert points_of(score_report(rubric, report), "C8") == points


@pytest.mark.parametrize(("absconded", "points"), [(False, 0), (True, 20)])
def test_c9_employer_absconded(rubric: Rubric, absconded: bool, points: int) -> None:
    assert points_of(score_report(rubric, make_report("arrears", absconded=absconded)), "C9") == points


@pytest.mark.parametrize(
    ("event_type", "points"),
    [("closure", 15), ("bankruptcy", 15), ("mass_layoff", 15), ("relocation", 10), ("restructuring", 8),
     ("social_insurance_arrears", 8), ("platform_rule_change", 8)],
)
def test_c10_stability_event(rubric: Rubric, event_type: str, points: int) -> None:
    assert points_of(score_report(rubric, make_report("stability", event_type=event_type)), "C10") == points


@pytest.mark.parametrize(("flag", "points"), [(False, 0), (True, 10)])
def test_c11_layoff_without_consultation(rubric: Rubric, flag: bool, points: int) -> None:
    report = make_report("stability", layoff_without_consultation=flag)
    assert points_of(score_report(rubric, report), "C11") == points


@pytest.mark.parametrize(
    ("dispute_type", "points"),
    [("work_injury", 8), ("collective_contract", 8), ("wages", 5), ("termination", 5), ("social_insurance", 5),
     ("overtime", 3), ("other", 0)],
)
def test_c12_dispute_type(rubric: Rubric, dispute_type: str, points: int) -> None:
    assert points_of(score_report(rubric, make_report(dispute_type=dispute_type)), "C12") == points


@pytest.mark.parametrize(
    ("stage", "points"),
    [("negotiation", 0), ("mediation", 0), ("mediation_failed", 8), ("arbitration", 0), ("litigation", 0)],
)
def test_c13_dispute_stage(rubric: Rubric, stage: str, points: int) -> None:
    assert points_of(score_report(rubric, make_report(stage=stage)), "C13") == points


@pytest.mark.parametrize(
    ("occurred_at", "points"),
    [
        ("2026-12-14T15:59:59Z", 0),   # 12-14 23:59:59 in Shanghai
        ("2026-12-14T16:00:00Z", 10),  # 12-15 00:00 in Shanghai
        ("2026-12-31T23:00:00Z", 10),  # across the year end
        ("2027-01-20T08:00:00+08:00", 10),
        ("2027-02-15T15:59:59Z", 10),  # 02-15 23:59:59 in Shanghai
        ("2027-02-15T16:00:00Z", 0),   # 02-16 00:00 in Shanghai
        ("2027-02-15T23:30:00-08:00", 0),  # 02-16 in Shanghai although 02-15 where it was written
        ("2026-06-01T00:00:00Z", 0),
    ],
)
def test_c14_spring_festival_season_is_judged_in_shanghai_time(rubric: Rubric, occurred_at: str, points: int) -> None:
    report = make_report("arrears", occurred_at=datetime.fromisoformat(occurred_at))
    assert points_of(score_report(rubric, report), "C14") == points


@pytest.mark.parametrize("kind", ["dispute", "stability"])
def test_c14_gives_no_points_to_other_kinds(rubric: Rubric, kind: str) -> None:
    report = make_report(kind, occurred_at=datetime(2027, 1, 10, tzinfo=UTC))
    assert points_of(score_report(rubric, report), "C14") == 0


@pytest.mark.parametrize(("flag", "points"), [(False, 0), (True, 5)])
def test_c15_new_employment_form(rubric: Rubric, flag: bool, points: int) -> None:
    assert points_of(score_report(rubric, make_report(new_employment_form=flag)), "C15") == points


@pytest.mark.parametrize(("earlier", "points"), [(0, 0), (1, 5), (2, 10), (3, 15), (4, 15), (100, 15)])
def test_c16_earlier_reports_in_90_days(rubric: Rubric, earlier: int, points: int) -> None:
    assessment = score_report(rubric, make_report(), History(earlier_reports_in_90_days=earlier))
    assert points_of(assessment, "C16") == points


@pytest.mark.parametrize(("open_alert", "points"), [(False, 0), (True, 5)])
def test_c17_open_alert(rubric: Rubric, open_alert: bool, points: int) -> None:
    assert points_of(score_report(rubric, make_report(), History(open_alert=open_alert)), "C17") == points


@pytest.mark.parametrize(
    ("workers", "amount", "months", "points"),
    [
        (10, 60_000, 0, 8),        # many workers and a large amount
        (9, 60_000, 0, 0),
        (10, 59_999.99, 0, 0),
        (1, 10_000, 3, 8),         # long arrears and a smaller amount
        (1, 9_999.99, 3, 0),
        (1, 10_000, 2, 0),
        (10, 59_999.99, 3, 8),     # the second branch alone
        (9, 9_999.99, 2, 0),
    ],
)
def test_c18_criminal_threshold_of_refusal_to_pay_wages(
    rubric: Rubric, workers: int, amount: float, months: int, points: int
) -> None:
    report = make_report("arrears", workers=workers, amount=amount, months=months)
    assert points_of(score_report(rubric, report), "C18") == points


@pytest.mark.parametrize("kind", ["dispute", "stability"])
def test_arrears_criteria_ignore_other_kinds(rubric: Rubric, kind: str) -> None:
    assessment = score_report(rubric, make_report(kind, workers=500, occurred_at=datetime(2027, 1, 1, tzinfo=UTC)))
    assert {reason.criterion for reason in assessment.reasons}.isdisjoint({"C6", "C7", "C9", "C14", "C18"})


# --- reasons -----------------------------------------------------------------------------------------------------


def test_reasons_are_specific_in_zh_and_en(rubric: Rubric) -> None:
    reasons = {r.criterion: r for r in score_report(rubric, make_report("arrears", workers=450, months=4)).reasons}
    assert reasons["C1"].text_zh == ("涉及职工 450 人(≥300 人),达到集体劳动争议的人数标准"
                                     "(10 人以上并有共同请求,《劳动争议调解仲裁法》第7条)")
    assert reasons["C1"].text_en == ("450 workers involved (≥300); the size of a collective dispute (10 or more "
                                     "workers with a common claim, Labour Dispute Mediation and Arbitration Law "
                                     "art. 7)")
    assert reasons["C7"].text_zh == "拖欠工资 4 个月(≥3 个月)"
    assert reasons["C7"].text_en == "wages 4 months overdue (≥3 months)"


def test_reasons_follow_rubric_order_and_only_give_points(rubric: Rubric) -> None:
    report = make_report("arrears", workers=12, actions=("road_blocking", "gathering"), amount=70_000, months=3,
                         petition="local", occurred_at=datetime(2027, 1, 5, tzinfo=UTC))
    assessment = score_report(rubric, report, History(earlier_reports_in_90_days=1))
    ids = [reason.criterion for reason in assessment.reasons]
    assert ids == ["C1", "C2", "C3", "C6", "C7", "C14", "C16", "C18"]
    assert all(reason.points > 0 for reason in assessment.reasons)
    assert "聚集、堵路" in assessment.reasons[1].text_zh  # rubric order, whatever the set's order


def test_a_quiet_report_has_no_reasons_and_level_none(rubric: Rubric) -> None:
    assessment = score_report(rubric, make_report())
    assert assessment == Assessment(score=0, level=RiskLevel.none, rubric_version="task7-v1", reasons=())


# --- floors and cap ----------------------------------------------------------------------------------------------


def test_f1_extreme_threat_raises_the_score_to_50(rubric: Rubric) -> None:
    assessment = score_report(rubric, make_report(extreme_threat=True))
    assert assessment.score == 50
    assert assessment.level == RiskLevel.orange
    assert [(r.criterion, r.points) for r in assessment.reasons] == [("C4", 25), ("F1", 25)]


def test_f1_that_does_not_raise_the_score_is_no_reason(rubric: Rubric) -> None:
    assessment = score_report(rubric, make_report(workers=300, extreme_threat=True))
    assert assessment.score == 55
    assert "F1" not in {reason.criterion for reason in assessment.reasons}


def test_f2_absconded_employer_with_10_workers_raises_the_score_to_50(rubric: Rubric) -> None:
    assessment = score_report(rubric, make_report("arrears", workers=10, absconded=True))
    assert assessment.score == 50
    assert points_of(assessment, "F2") == 50 - 8 - 20


def test_f2_needs_10_workers(rubric: Rubric) -> None:
    assessment = score_report(rubric, make_report("arrears", workers=9, absconded=True))
    assert assessment.score == 3 + 20
    assert points_of(assessment, "F2") == 0


def test_f3_100_workers_in_collective_action_raises_the_score_to_70(rubric: Rubric) -> None:
    assessment = score_report(rubric, make_report(workers=100, actions=("gathering",)))
    assert assessment.score == 70
    assert assessment.level == RiskLevel.red
    assert points_of(assessment, "F3") == 70 - 25 - 10
    assert score_report(rubric, make_report(workers=99, actions=("gathering",))).score == 15 + 10
    assert score_report(rubric, make_report(workers=100)).score == 25


def test_floors_apply_in_rubric_order_each_adding_what_it_raises(rubric: Rubric) -> None:
    assessment = score_report(rubric, make_report(workers=100, actions=("gathering",), extreme_threat=True))
    assert assessment.score == 70
    assert points_of(assessment, "F1") == 0  # 25 + 10 + 25 = 60 is already above 50
    assert points_of(assessment, "F3") == 10


def test_score_is_capped_at_100_and_reasons_keep_the_uncapped_points(rubric: Rubric) -> None:
    report = make_report(
        "arrears", workers=450, migrant=40, actions=("road_blocking", "occupation"), petition="skip_level",
        extreme_threat=True, online="media", amount=6_000_000, months=5, absconded=True, new_employment_form=True,
        occurred_at=datetime(2027, 1, 10, tzinfo=UTC),
    )
    assessment = score_report(rubric, report, History(earlier_reports_in_90_days=3, open_alert=True))
    assert assessment.score == 100
    assert assessment.level == RiskLevel.red
    assert sum(reason.points for reason in assessment.reasons) == 30 + 25 + 15 + 25 + 12 + 20 + 12 + 5 + 20 + 10 + 5 \
        + 15 + 5 + 8
    assert all(reason.points > 0 for reason in assessment.reasons)


# --- levels ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "level"),
    [(0, RiskLevel.none), (14, RiskLevel.none), (15, RiskLevel.blue), (29, RiskLevel.blue), (30, RiskLevel.yellow),
     (49, RiskLevel.yellow), (50, RiskLevel.orange), (69, RiskLevel.orange), (70, RiskLevel.red),
     (100, RiskLevel.red)],
)
def test_level_boundaries(rubric: Rubric, score: int, level: RiskLevel) -> None:
    assert rubric.level_for(score) == level


@pytest.mark.parametrize(
    ("level", "seconds"),
    [(RiskLevel.red, 3600), (RiskLevel.orange, 14400), (RiskLevel.yellow, 86400), (RiskLevel.blue, None),
     (RiskLevel.none, None)],
)
def test_ack_deadlines_come_from_the_rubric(rubric: Rubric, level: RiskLevel, seconds: int | None) -> None:
    assert rubric.ack_deadline_seconds(level) == seconds
