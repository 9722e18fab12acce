"""Every reason text of the default rubric, rendered: both languages, no placeholder left, English plurals right,
no text claiming more than its criterion measures, and the form's C11 box saying what the C11 reason says."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from importlib import resources
from typing import Any

import pytest

from services.risk.scoring.engine import History, score_report
from services.risk.scoring.rubric import BandCriterion, EnumCriterion, Rubric, load_rubric
from shared.events import Reason
from tests.risk.test_scoring import make_report

pytestmark = pytest.mark.unit

_CJK = re.compile(r"[\u3400-\u9fff]")
SEASON = datetime(2027, 1, 10, 2, 0, tzinfo=UTC)

# make_report's keyword for each numeric field a band criterion reads (history fields go to History).
_BAND_FIELDS = {"workers_involved": "workers", "arrears.amount_owed_cny": "amount", "arrears.months_overdue": "months"}
# The kind a criterion applies to when it is limited to kinds; for the others, dispute.
_ENUM_FIELDS = {
    "collective_action": ("dispute", "actions"),
    "petition": ("dispute", "petition"),
    "online_exposure": ("dispute", "online"),
    "stability.event_type": ("stability", "event_type"),
    "dispute.dispute_type": ("dispute", "dispute_type"),
    "dispute.stage": ("dispute", "stage"),
}


@pytest.fixture(scope="module")
def rubric() -> Rubric:
    return load_rubric("task7-v1")


def _cases(rubric: Rubric) -> Iterator[tuple[str, Any, History]]:
    """(name, report, history): every band of every band criterion at its threshold (and at 1 and 2 where that is a
    band), every scoring key of every enum, every flag, both limbs of C18, the season, and every floor."""
    for criterion in rubric.criteria:
        if isinstance(criterion, BandCriterion):
            kind = (criterion.applies_to_kinds or ["dispute"])[0]
            values: set[float] = set()
            for band in criterion.bands:
                values.add(band.min + 1 if band.exclusive else band.min)
            values |= {1, 2}
            for number in sorted(values):
                if criterion.field.startswith("history."):
                    history: dict[str, Any] = {criterion.field.removeprefix("history."): int(number)}
                    yield f"{criterion.id}={number}", make_report(kind), History(**history)
                else:
                    fields: dict[str, Any] = {_BAND_FIELDS[criterion.field]: number}
                    yield f"{criterion.id}={number}", make_report(kind, **fields), History()
        elif isinstance(criterion, EnumCriterion):
            kind, keyword = _ENUM_FIELDS[criterion.field]
            for key, points in criterion.points.items():
                if points > 0:
                    fields = {keyword: (key,) if criterion.is_set else key}
                    yield f"{criterion.id}={key}", make_report(kind, **fields), History()
    yield "C2=all", make_report(actions=("gathering", "work_stoppage", "road_blocking", "occupation")), History()
    yield "C4", make_report(extreme_threat=True), History()
    yield "C8", make_report(workers=10, migrant=10), History()
    yield "C9", make_report("arrears", amount=1, absconded=True), History()
    yield "C11", make_report("stability", workers=25, layoff_without_consultation=True), History()
    yield "C14", make_report("arrears", amount=1, occurred_at=SEASON), History()
    yield "C15", make_report(new_employment_form=True), History()
    yield "C17", make_report(), History(open_alert=True)
    # C18's two limbs, with one worker and with one month (plurals) too.
    yield "C18=workers,1 month", make_report("arrears", workers=12, amount=60_000, months=1), History()
    yield "C18=workers,0 months", make_report("arrears", workers=10, amount=60_000, months=0), History()
    yield "C18=months,1 worker", make_report("arrears", workers=1, amount=10_000, months=3), History()
    yield "C18=months,2 workers", make_report("arrears", workers=2, amount=10_000, months=4), History()
    yield "F1", make_report(extreme_threat=True), History()
    yield "F2", make_report("arrears", workers=10, amount=1, absconded=True), History()
    yield "F3", make_report(workers=100, actions=("gathering",)), History()


def _rendered(rubric: Rubric) -> list[tuple[str, Reason]]:
    return [(name, reason) for name, report, history in _cases(rubric)
            for reason in score_report(rubric, report, history).reasons]


def test_every_criterion_band_key_and_floor_is_rendered(rubric: Rubric) -> None:
    rendered = _rendered(rubric)
    seen = {reason.criterion for _, reason in rendered}
    assert seen >= {criterion.id for criterion in rubric.criteria} | {floor.id for floor in rubric.floors}
    for criterion in rubric.criteria:
        points = {reason.points for _, reason in rendered if reason.criterion == criterion.id}
        if isinstance(criterion, BandCriterion):
            assert points >= {band.points for band in criterion.bands}, criterion.id
        if isinstance(criterion, EnumCriterion):
            for key, value in criterion.points.items():
                if value > 0:
                    label = criterion.labels_en.get(key, key.replace("_", " "))
                    assert any(label in reason.text_en for _, reason in rendered if reason.criterion == criterion.id)


def test_every_text_is_complete_in_both_languages(rubric: Rubric) -> None:
    for name, reason in _rendered(rubric):
        for text in (reason.text_zh, reason.text_en):
            for leftover in ("{", "}", "|", "None"):
                assert leftover not in text, (name, text)
        assert _CJK.search(reason.text_zh), (name, reason.text_zh)
        assert not _CJK.search(reason.text_en), (name, reason.text_en)


# A bare 1 (not part of 21, 1.5, ≥1, >1) followed by a plural noun, or a number other than 1 by a singular one.
_WRONG_PLURAL = re.compile(
    r"(?<![\d.,≥>])1 (?:months|workers|migrant workers|earlier reports)\b"
    r"|(?<![\d.,])(?:0|[2-9]|\d{2,}) (?:month|worker|migrant worker|earlier report)\b(?!s)")


def test_english_plurals_are_right(rubric: Rubric) -> None:
    rendered = _rendered(rubric)
    for name, reason in rendered:
        assert not _WRONG_PLURAL.search(reason.text_en), (name, reason.text_en)
    by_case: dict[str, list[str]] = {}
    for name, reason in rendered:
        by_case.setdefault(f"{name}/{reason.criterion}", []).append(reason.text_en)
    assert by_case["C7=1/C7"] == ["wages 1 month overdue (≥1 months)"]
    assert by_case["C7=2/C7"] == ["wages 2 months overdue (≥2 months)"]
    assert by_case["C16=1/C16"] == ["1 earlier report on this enterprise in 90 days (≥1)"]
    assert by_case["C16=2/C16"] == ["2 earlier reports on this enterprise in 90 days (≥2)"]
    assert ": 12 workers, ¥60,000.00, 1 month;" in by_case["C18=workers,1 month/C18"][0]
    assert ": 10 workers, ¥60,000.00, 0 months;" in by_case["C18=workers,0 months/C18"][0]
    assert ": 1 worker, ¥10,000.00, 3 months;" in by_case["C18=months,1 worker/C18"][0]
    assert ": 2 workers, ¥10,000.00, 4 months;" in by_case["C18=months,2 workers/C18"][0]


def _texts_of(rubric: Rubric, criterion: str) -> list[Reason]:
    reasons = [reason for _, reason in _rendered(rubric) if reason.criterion == criterion]
    assert reasons
    return reasons


def test_c18_says_the_amount_meets_only_the_large_amount_limb(rubric: Rubric) -> None:
    for reason in _texts_of(rubric, "C18"):
        for claim in ("入罪标准", "构成拒不支付劳动报酬罪", "已构成"):
            assert claim not in reason.text_zh
        for claim in ("meets the criminal threshold", "criminal threshold", "is a crime", "constitutes"):
            assert claim not in reason.text_en.lower()
        assert "数额较大" in reason.text_zh
        assert "第276条之一" in reason.text_zh
        assert "责令支付仍不支付" in reason.text_zh
        assert "江苏省高院 2014" in reason.text_zh
        assert "'large amount'" in reason.text_en
        assert "art. 276-1" in reason.text_en
        assert "after an order to pay" in reason.text_en
        assert "Jiangsu High Court 2014" in reason.text_en


def test_c1_names_a_collective_dispute_from_ten_workers(rubric: Rubric) -> None:
    for reason in _texts_of(rubric, "C1"):
        workers = int(reason.text_en.split(" ", 1)[0])
        collective_zh = "集体劳动争议" in reason.text_zh and "《劳动争议调解仲裁法》第7条" in reason.text_zh
        collective_en = "collective dispute" in reason.text_en and "art. 7" in reason.text_en
        assert collective_zh is (workers >= 10), reason.text_zh
        assert collective_en is (workers >= 10), reason.text_en


def test_c8_does_not_credit_the_regulation_with_the_rubrics_threshold(rubric: Rubric) -> None:
    for reason in _texts_of(rubric, "C8"):
        assert "本评分表所定标准" in reason.text_zh
        assert "《保障农民工工资支付条例》" in reason.text_zh
        assert "this rubric's threshold" in reason.text_en
        assert "Migrant Workers" in reason.text_en


def _form_labels() -> tuple[str, str]:
    """The C11 checkbox label of the intake form, zh (in the markup) and en (in the page's English strings)."""
    page = resources.files("services.intake").joinpath("pages/index.html").read_text(encoding="utf-8")
    zh = re.search(r'<label for="f-stability-layoff_without_consultation"[^>]*>([^<]+)</label>', page)
    en = re.findall(r'"f\.layoff_without_consultation":\s*"([^"]+)"', page)
    assert zh is not None, "the form's C11 checkbox label"
    assert len(en) == 2, "the C11 label's zh and en strings"
    assert html.unescape(zh.group(1)) == en[0], "the markup and the zh string say the same"
    return html.unescape(zh.group(1)), en[1]


C11_KEY_WORDS_ZH = ("提前 30 日", "工会或者全体职工", "说明情况", "听取意见", "20 人以上", "10% 以上")
C11_KEY_WORDS_EN = ("30 days ahead", "the union or all staff", "explaining", "hearing their opinions", "20 or more",
                    "10% or more of the workforce")


def test_c11_form_label_and_reason_say_the_same_thing(rubric: Rubric) -> None:
    label_zh, label_en = _form_labels()
    (reason,) = _texts_of(rubric, "C11")
    for word in C11_KEY_WORDS_ZH:
        assert word in label_zh, (word, label_zh)
        assert word in reason.text_zh, (word, reason.text_zh)
    for word in C11_KEY_WORDS_EN:
        assert word in label_en, (word, label_en)
        assert word in reason.text_en, (word, reason.text_en)
    assert "《劳动合同法》第41条" in reason.text_zh
    assert "Labour Contract Law art. 41" in reason.text_en
