"""What-if and replay without servers: re-scoring a stored row, the summary of level changes, replay events."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from services.risk.models import AssessmentRecord
from services.risk.rescoring import LEVELS, ReplayCounts, Summary, render, replay_event, replay_event_id, rescore
from services.risk.scoring import Assessment, load_rubric
from services.risk.service import assessed_event
from shared.events import Reason, RiskLevel
from tests.risk.test_scoring import make_report

pytestmark = pytest.mark.unit

NOW = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


def stored(report_id: str, level: RiskLevel, score: int) -> AssessmentRecord:
    report = make_report("arrears", workers=40, amount=200_000, months=4)
    return AssessmentRecord(
        report_id=report_id, event_id=str(uuid.uuid4()), trace_id=report_id, credit_code=report.credit_code,
        kind=report.kind.value, region_code=report.region_code, industry=report.enterprise.industry,
        occurred_at=report.occurred_at, accepted_at=NOW, assessed_at=NOW, score=score, level=level.value,
        rubric_version="task7-v1", reasons=[], ack_deadline_seconds=None, report=report.model_dump(mode="json"),
    )


def outcome(level: RiskLevel, score: int) -> Assessment:
    return Assessment(score=score, level=level, rubric_version="task7-v2",
                      reasons=(Reason(criterion="C1", points=score, text_zh="理由", text_en="reason"),))


def test_rescore_scores_the_stored_report_with_the_given_history() -> None:
    rubric = load_rubric("task7-v1")
    row = stored("r-1", RiskLevel.none, 0)

    without, with_history = rescore(rubric, row, 0, False), rescore(rubric, row, 5, True)

    assert with_history.score > without.score
    assert without.rubric_version == "task7-v1"


def test_summary_counts_raised_lowered_and_the_transition_matrix() -> None:
    summary = Summary(rubric_version="task7-v2", since=None, until=None, limit=1)
    summary.add(stored("r-1", RiskLevel.blue, 30), outcome(RiskLevel.orange, 60))
    summary.add(stored("r-2", RiskLevel.red, 80), outcome(RiskLevel.yellow, 50))
    summary.add(stored("r-3", RiskLevel.none, 5), outcome(RiskLevel.none, 5))

    assert (summary.reports, summary.raised, summary.lowered, summary.changed) == (3, 1, 1, 2)
    assert summary.matrix[RiskLevel.blue][RiskLevel.orange] == 1
    assert summary.matrix[RiskLevel.none][RiskLevel.none] == 1
    assert sum(sum(row.values()) for row in summary.matrix.values()) == 3
    assert [change.report_id for change in summary.changes] == ["r-1"]  # only `limit` changes are listed
    assert summary.as_json()["changed"] == 2
    text = render(summary)
    assert "升级 raised 1" in text
    assert "降级 lowered 1" in text
    assert len(LEVELS) == len(RiskLevel)


def test_replay_event_carries_the_new_score_and_a_stable_event_id() -> None:
    rubric = load_rubric("task7-v1")
    row = stored("r-1", RiskLevel.blue, 30)
    new = outcome(RiskLevel.orange, 60)

    event = replay_event(assessed_event(row), rubric, new, NOW)

    assert event.replay is True
    assert (event.score, event.level, event.rubric_version) == (60, RiskLevel.orange, rubric.version)
    assert event.event_id == replay_event_id("r-1", rubric.version) == replay_event_id("r-1", rubric.version)
    assert event.event_id != replay_event_id("r-1", "task7-v2")
    assert event.report == assessed_event(row).report


def test_replay_counts_add_up_chunks() -> None:
    counts = ReplayCounts()
    chunk = [(stored("r-1", RiskLevel.blue, 30), outcome(RiskLevel.orange, 60)),
             (stored("r-2", RiskLevel.none, 5), outcome(RiskLevel.none, 5))]
    counts.add(chunk, stored_now=1)
    counts.add(chunk, stored_now=0)

    assert counts.as_json() == {"reports": 4, "published": 1, "already_replayed": 3, "changed": 2}
