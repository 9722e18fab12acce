"""Re-scoring stored assessments with another rubric version: `python -m services.risk.cli whatif|replay`.

- `whatif` shows what a rubric would change (how many reports change level, from → to, which ones) and writes
  nothing: it reads in a read-only transaction and publishes nothing.
- `replay` re-scores the reports that occurred in a time range, stores each re-score in `risk.rescores` and
  publishes it on `assessments.v1` as a `report.assessed` event with `replay=True` and the new rubric version.
  The original assessments stay as they were. A re-score already stored is skipped, so a replay can be run again.

History for re-scoring (the rubric paths `history.*`):
- `earlier_reports_in_90_days` (C16) is recomputed from the stored assessments: same credit code, `occurred_at`
  in the 90 days up to the report's, and assessed before it (`assessed_at` earlier) — what the consumer counted.
- `open_alert` (C17) cannot be recomputed: the risk schema keeps only each alert's latest state, not when it was
  open. It is read back from the stored assessment instead: when the rubric the report was scored with is known (a
  shipped version, or the rubric being tried) and has a flag criterion on `history.open_alert` applying to the
  report's kind, an alert was open exactly when that criterion is among the stored reasons. Otherwise it counts as
  not open, which can only lower a re-score.

Times given without an offset are read in the rubric's time zone; `--since` is inclusive, `--until` exclusive.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any

from sqlalchemy import Select, func, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import aliased

from services.risk.models import Assessment, Rescore
from services.risk.scoring import Assessment as Outcome
from services.risk.scoring import History, Rubric, RubricError, available_versions, load_rubric, score_report
from services.risk.scoring.rubric import FlagCriterion
from services.risk.service import HISTORY_WINDOW, assessed_event
from services.risk.settings import RiskSettings
from shared.db import SessionFactory, create_engine, session_factory, transaction
from shared.events import ReportAssessed, RiskLevel, Topic, utcnow
from shared.kafka import EventProducer
from shared.report import Report, ReportKind

OPEN_ALERT_FIELD = "history.open_alert"
LEVELS = sorted(RiskLevel, key=lambda level: level.rank, reverse=True)
CHUNK = 500
# Re-score event ids are derived from (report id, rubric version): a replay that published but could not commit
# publishes the very same event ids when run again, and consumers drop the copies.
REPLAY_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "labour-risk/risk/replay")


# --- pure helpers ------------------------------------------------------------------------------------------------


def replay_event_id(report_id: str, rubric_version: str) -> uuid.UUID:
    return uuid.uuid5(REPLAY_NAMESPACE, f"{report_id}/{rubric_version}")


def parse_time(value: str | None, zone: tzinfo) -> datetime | None:
    """An ISO date or date-time; one without an offset is read in `zone`."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)


class OpenAlertReader:
    """Whether an alert on the enterprise was open when a report was assessed, read from the stored reasons."""

    def __init__(self, trying: Rubric) -> None:
        self._trying = trying
        self._flags: dict[str, list[FlagCriterion] | None] = {}

    def __call__(self, row: Assessment) -> bool:
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


def rescore(rubric: Rubric, row: Assessment, earlier_reports: int, open_alert: bool) -> Outcome:
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

    def add(self, row: Assessment, outcome: Outcome) -> None:
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


def replay_event(row: Assessment, rubric: Rubric, outcome: Outcome, now: datetime) -> ReportAssessed:
    """The `report.assessed` event of a re-score: the stored report, the new score, `replay=True`."""
    return assessed_event(row).model_copy(update={
        "event_id": replay_event_id(row.report_id, rubric.version), "occurred_at": now, "score": outcome.score,
        "level": outcome.level, "rubric_version": rubric.version, "reasons": list(outcome.reasons),
        "assessed_at": now, "ack_deadline_seconds": rubric.ack_deadline_seconds(outcome.level), "replay": True,
    })


# --- reading and writing -----------------------------------------------------------------------------------------


def stored_in_range(since: datetime | None, until: datetime | None) -> Select[Assessment, int]:
    """Stored assessments by `occurred_at`, each with the count of earlier reports the consumer saw (C16)."""
    earlier = aliased(Assessment)
    earlier_reports = (
        select(func.count()).select_from(earlier).where(
            earlier.credit_code == Assessment.credit_code,
            earlier.occurred_at <= Assessment.occurred_at,
            earlier.occurred_at >= Assessment.occurred_at - HISTORY_WINDOW,
            earlier.assessed_at < Assessment.assessed_at,
        ).correlate(Assessment).scalar_subquery()
    )
    statement = select(Assessment, earlier_reports.label("earlier_reports"))
    if since is not None:
        statement = statement.where(Assessment.occurred_at >= since)
    if until is not None:
        statement = statement.where(Assessment.occurred_at < until)
    return statement.order_by(Assessment.occurred_at, Assessment.report_id)


async def rescored(sessions: SessionFactory, rubric: Rubric, since: datetime | None,
                   until: datetime | None) -> AsyncIterator[list[tuple[Assessment, Outcome]]]:
    """Re-scores of the stored assessments in range, in chunks, read in one read-only transaction."""
    open_alert = OpenAlertReader(rubric)
    async with transaction(sessions) as session:
        await session.execute(text("SET TRANSACTION READ ONLY"))
        result = await session.stream(stored_in_range(since, until).execution_options(yield_per=CHUNK))
        async for partition in result.partitions(CHUNK):
            yield [(row, rescore(rubric, row, earlier, open_alert(row))) for row, earlier in partition]


async def whatif(sessions: SessionFactory, rubric: Rubric, since: datetime | None, until: datetime | None,
                 limit: int) -> Summary:
    summary = Summary(rubric_version=rubric.version, since=since, until=until, limit=limit)
    async for chunk in rescored(sessions, rubric, since, until):
        for row, outcome in chunk:
            summary.add(row, outcome)
    return summary


@dataclass
class ReplayCounts:
    reports: int = 0
    published: int = 0
    already_replayed: int = 0
    changed: int = 0

    def as_json(self) -> dict[str, int]:
        return {"reports": self.reports, "published": self.published, "already_replayed": self.already_replayed,
                "changed": self.changed}


async def replay(sessions: SessionFactory, producer: EventProducer, rubric: Rubric, since: datetime,
                 until: datetime) -> ReplayCounts:
    """Store and publish the re-scores not stored yet. Each chunk is one transaction that commits only after its
    events are acknowledged by Kafka, so a failed run leaves nothing half-done to skip next time."""
    counts = ReplayCounts()
    async for chunk in rescored(sessions, rubric, since, until):
        now = utcnow()
        events = {row.report_id: replay_event(row, rubric, outcome, now) for row, outcome in chunk}
        async with transaction(sessions) as session:
            inserted = set(await session.scalars(
                insert(Rescore).values([
                    {"report_id": event.report_id, "rubric_version": rubric.version, "event_id": str(event.event_id),
                     "score": event.score, "level": event.level.value,
                     "reasons": [reason.model_dump() for reason in event.reasons], "assessed_at": now}
                    for event in events.values()
                ]).on_conflict_do_nothing().returning(Rescore.report_id)
            ))
            await producer.send_events(
                [(Topic.assessments, event) for report_id, event in events.items() if report_id in inserted]
            )
        counts.reports += len(chunk)
        counts.published += len(inserted)
        counts.already_replayed += len(chunk) - len(inserted)
        counts.changed += sum(1 for row, outcome in chunk if outcome.level.value != row.level)
    return counts


def render_replay(counts: ReplayCounts, rubric: Rubric, since: datetime, until: datetime) -> str:
    return "\n".join([
        f"重放 / Replay with {rubric.version}: occurred_at [{since.isoformat()}, {until.isoformat()})",
        f"报告数 / Reports in range: {counts.reports}",
        f"已发布 / Published (replay=True): {counts.published}",
        f"此前已重放,跳过 / Already replayed, skipped: {counts.already_replayed}",
        f"等级变化 / Level changes: {counts.changed}",
    ])


# --- command line ------------------------------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    main = argparse.ArgumentParser(
        prog="python -m services.risk.cli",
        description="用另一版本评分标准重新评分 / Re-score stored assessments with another rubric",
    )
    commands = main.add_subparsers(dest="command", required=True)
    what = commands.add_parser("whatif", help="show what would change; writes and publishes nothing")
    again = commands.add_parser("replay", help="store and publish re-scores (replay=True) for a time range")
    for command, required in ((what, False), (again, True)):
        command.add_argument("--rubric", required=True, help="a shipped version (task7-v1) or a YAML file path")
        command.add_argument("--since", required=required, help="ISO date/time, inclusive (by occurred_at)")
        command.add_argument("--until", required=required, help="ISO date/time, exclusive (by occurred_at)")
        command.add_argument("--json", action="store_true", help="print JSON instead of text")
    what.add_argument("--limit", type=int, default=20, help="how many changed report ids to list (default 20)")
    return main


async def run(arguments: argparse.Namespace, settings: RiskSettings, rubric: Rubric, since: datetime | None,
              until: datetime | None) -> str:
    engine = create_engine(settings.database_url, pool_size=2)
    sessions = session_factory(engine)
    try:
        if arguments.command == "whatif":
            summary = await whatif(sessions, rubric, since, until, arguments.limit)
            return json.dumps(summary.as_json(), ensure_ascii=False, indent=2) if arguments.json else render(summary)
        assert since is not None  # --since and --until are required by the replay parser
        assert until is not None
        producer = EventProducer(settings.kafka_bootstrap_servers, client_id="risk-replay",
                                 topic_prefix=settings.kafka_topic_prefix)
        try:
            counts = await replay(sessions, producer, rubric, since, until)
        finally:
            await producer.stop()
        if arguments.json:
            return json.dumps({"rubric_version": rubric.version, "since": since.isoformat(),
                               "until": until.isoformat(), **counts.as_json()}, ensure_ascii=False, indent=2)
        return render_replay(counts, rubric, since, until)
    finally:
        await engine.dispose()


def main(argv: Sequence[str] | None = None) -> int:
    arguments = parser().parse_args(argv)
    try:
        rubric = load_rubric(arguments.rubric)
    except RubricError as error:
        sys.stderr.write(f"评分标准无法使用 / the rubric cannot be used: {error}\n")
        return 2
    try:
        since = parse_time(arguments.since, rubric.zone)
        until = parse_time(arguments.until, rubric.zone)
    except ValueError as error:
        sys.stderr.write(f"--since / --until: {error}\n")
        return 2
    output = asyncio.run(run(arguments, RiskSettings(), rubric, since, until))
    sys.stdout.write(output + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
