"""What-if and replay, the pure part: re-scoring a stored assessment with another rubric version, the summary
of what a rubric changes (and its zh/en text), and the `report.assessed` event of a re-score. No I/O here: the
queries are in `repository`, the transactions and publishing in `cli` (`python -m services.risk.cli`).

History for re-scoring (the rubric paths `history.*`):
- `earlier_reports_in_90_days` (C16) is recomputed from the stored assessments: same credit code, `occurred_at`
  in the 90 days up to the report's, and assessed before it (`assessed_at` earlier) — what the consumer counted.
- `open_alert` (C17) cannot be recomputed: the risk schema keeps only each alert's latest state, not when it was
  open. It is read back from the stored assessment instead: when the rubric the report was scored with is known (a
  shipped version, or the rubric being tried) and has a flag criterion on `history.open_alert` applying to the
  report's kind, an alert was open exactly when that criterion is among the stored reasons. Otherwise it counts as
  not open, which can only lower a re-score.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.risk.models import AssessmentRecord
from services.risk.scoring import Assessment, History, Rubric, available_versions, load_rubric, score_report
from services.risk.scoring.rubric import FlagCriterion
from shared.events import ReportAssessed, RiskLevel
from shared.report import Report, ReportKind

OPEN_ALERT_FIELD = "history.open_alert"
LEVELS = sorted(RiskLevel, key=lambda level: level.rank, reverse=True)
# Re-score event ids are derived from (report id, rubric version): a replay that published but could not commit
# publishes the very same event ids when run again, and consumers drop the copies.
REPLAY_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "labour-risk/risk/replay")


def replay_event_id(report_id: str, rubric_version: str) -> uuid.UUID:
    """The event id of a re-score: the same for the same report and rubric version, run after run."""
    return uuid.uuid5(REPLAY_NAMESPACE, f"{report_id}/{rubric_version}")


class OpenAlertReader:
    """Whether an alert on the enterprise was open when a report was assessed, read from the stored reasons."""

    def __init__(self, trying: Rubric) -> None:
        self._trying = trying
        self._flags: dict[str, list[FlagCriterion] | None] = {}

    def __call__(self, row: AssessmentRecord) -> bool:
        flags = self._flags_of(row.rubric_version)
        if not flags:
            return False
        kind = ReportKind(row.kind)
        fired = {reason["criterion"] for reason in row.reasons}
        return any(flag.applies_to(kind) and flag.id in fired for flag in flags)

    def _flags_of(self, version: str) -> list[FlagCriterion] | None:
        if version not in self._flags:
            rubric = self._rubric(version)
            self._flags[version] = None if rubric is None else [
                criterion for criterion in rubric.criteria
                if isinstance(criterion, FlagCriterion) and criterion.field == OPEN_ALERT_FIELD and criterion.points > 0
            ]
        return self._flags[version]

    def _rubric(self, version: str) -> Rubric | None:
        if version in available_versions():
            return load_rubric(version)
        return self._trying if version == self._trying.version else None


def rescore(rubric: Rubric, row: AssessmentRecord, earlier_reports: int, open_alert: bool) -> Assessment:
    """Score a stored report again with `rubric` and the history it had when it was assessed."""
    report = Report.model_validate(row.report)
    return score_report(rubric, report, History(earlier_reports_in_90_days=earlier_reports, open_alert=open_alert))


@dataclass(frozen=True)
class Change:
    report_id: str
    credit_code: str
    occurred_at: datetime
    level_from: RiskLevel
    level_to: RiskLevel
    score_from: int
    score_to: int

    def as_json(self) -> dict[str, Any]:
        return {"report_id": self.report_id, "credit_code": self.credit_code,
                "occurred_at": self.occurred_at.isoformat(), "from": self.level_from.value,
                "to": self.level_to.value, "score_from": self.score_from, "score_to": self.score_to}


@dataclass
class Summary:
    """What a rubric changes over a set of stored assessments."""

    rubric_version: str
    since: datetime | None
    until: datetime | None
    limit: int
    reports: int = 0
    raised: int = 0
    lowered: int = 0
    matrix: dict[RiskLevel, dict[RiskLevel, int]] = field(
        default_factory=lambda: {old: dict.fromkeys(LEVELS, 0) for old in LEVELS})
    changes: list[Change] = field(default_factory=list)
    stored_versions: set[str] = field(default_factory=set)

    @property
    def changed(self) -> int:
        return self.raised + self.lowered

    def add(self, row: AssessmentRecord, outcome: Assessment) -> None:
        old, new = RiskLevel(row.level), outcome.level
        self.reports += 1
        self.stored_versions.add(row.rubric_version)
        self.matrix[old][new] += 1
        if old == new:
            return
        if new.rank > old.rank:
            self.raised += 1
        else:
            self.lowered += 1
        if len(self.changes) < self.limit:
            self.changes.append(Change(row.report_id, row.credit_code, row.occurred_at, old, new, row.score,
                                       outcome.score))

    def as_json(self) -> dict[str, Any]:
        return {
            "rubric_version": self.rubric_version,
            "stored_rubric_versions": sorted(self.stored_versions),
            "since": self.since.isoformat() if self.since else None,
            "until": self.until.isoformat() if self.until else None,
            "reports": self.reports, "changed": self.changed, "raised": self.raised, "lowered": self.lowered,
            "matrix": {old.value: {new.value: count for new, count in row.items()} for old, row in self.matrix.items()},
            "changes": [change.as_json() for change in self.changes],
        }


def render(summary: Summary) -> str:
    """The zh/en text of a what-if summary."""
    since = summary.since.isoformat() if summary.since else "…"
    until = summary.until.isoformat() if summary.until else "…"
    stored = ", ".join(sorted(summary.stored_versions)) or "-"
    lines = [
        f"假设评分 / What-if re-score: {stored} → {summary.rubric_version}",
        f"发生时间范围 / occurred_at range: [{since}, {until})",
        f"报告数 / Reports: {summary.reports}",
        f"等级变化 / Level changes: {summary.changed} (升级 raised {summary.raised}, 降级 lowered {summary.lowered})",
        "转移矩阵 / Transition matrix (行 = 原等级 from, 列 = 新等级 to):",
        "  " + " " * 8 + "".join(f"{level.value:>8}" for level in LEVELS),
    ]
    for old in LEVELS:
        lines.append(f"  {old.value:<8}" + "".join(f"{summary.matrix[old][new]:>8}" for new in LEVELS))
    if summary.changed:
        lines.append(f"等级变化的报告 / Reports that change level ({len(summary.changes)} of {summary.changed}):")
        lines.extend(
            f"  {change.report_id}  {change.level_from.value} → {change.level_to.value}  "
            f"({change.score_from} → {change.score_to})  {change.credit_code}  {change.occurred_at.isoformat()}"
            for change in summary.changes
        )
    lines.append("未写入任何数据,未发布任何事件 / Nothing was written or published.")
    return "\n".join(lines)


def replay_event(original: ReportAssessed, rubric: Rubric, outcome: Assessment, now: datetime) -> ReportAssessed:
    """The `report.assessed` event of a re-score: the original event (the stored report), the new score,
    `replay=True`."""
    return original.model_copy(update={
        "event_id": replay_event_id(original.report_id, rubric.version), "occurred_at": now, "score": outcome.score,
        "level": outcome.level, "rubric_version": rubric.version, "reasons": list(outcome.reasons),
        "assessed_at": now, "ack_deadline_seconds": rubric.ack_deadline_seconds(outcome.level), "replay": True,
    })


@dataclass
class ReplayCounts:
    """What a replay did: reports in range, re-scores published, re-scores stored before, level changes."""

    reports: int = 0
    published: int = 0
    already_replayed: int = 0
    changed: int = 0

    def add(self, chunk: Sequence[tuple[AssessmentRecord, Assessment]], stored_now: int) -> None:
        """Count a chunk of re-scores of which `stored_now` were new (and published)."""
        self.reports += len(chunk)
        self.published += stored_now
        self.already_replayed += len(chunk) - stored_now
        self.changed += sum(1 for row, outcome in chunk if outcome.level.value != row.level)

    def as_json(self) -> dict[str, int]:
        return {"reports": self.reports, "published": self.published, "already_replayed": self.already_replayed,
                "changed": self.changed}


def render_replay(counts: ReplayCounts, rubric: Rubric, since: datetime, until: datetime) -> str:
    """The zh/en text of a replay's counts."""
    return "\n".join([
        f"重放 / Replay with {rubric.version}: occurred_at [{since.isoformat()}, {until.isoformat()})",
        f"报告数 / Reports in range: {counts.reports}",
        f"已发布 / Published (replay=True): {counts.published}",
        f"此前已重放,跳过 / Already replayed, skipped: {counts.already_replayed}",
        f"等级变化 / Level changes: {counts.changed}",
    ])
