"""Re-scoring stored assessments with another rubric version: `python -m services.risk.cli whatif|replay`.

- `whatif` shows what a rubric would change (how many reports change level, from → to, which ones) and writes
  nothing: it reads in a read-only transaction and publishes nothing.
- `replay` re-scores the reports that occurred in a time range, stores each re-score in `risk.rescores` and
  publishes it on `assessments.v1` as a `report.assessed` event with `replay=True` and the new rubric version.
  The original assessments stay as they were. A re-score already stored is skipped, so a replay can be run again.

This module is the edge: arguments, the database and producer, and the transactions. What a re-score is and how
it is summed up is `services.risk.rescoring`; the queries are in `services.risk.repository`.

Times given without an offset are read in the rubric's time zone; `--since` is inclusive, `--until` exclusive.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from datetime import datetime, tzinfo

from services.risk import service
from services.risk.rescoring import ReplayCounts, Summary, render, render_replay, replay_event
from services.risk.scoring import Rubric, RubricError, load_rubric
from services.risk.settings import RiskSettings
from shared.db import SessionFactory, create_engine, session_factory, transaction
from shared.events import Topic, utcnow
from shared.kafka import EventProducer


def parse_time(value: str | None, zone: tzinfo) -> datetime | None:
    """An ISO date or date-time; one without an offset is read in `zone`."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)


async def whatif(sessions: SessionFactory, rubric: Rubric, since: datetime | None, until: datetime | None,
                 limit: int) -> Summary:
    """What `rubric` would change over the stored assessments in range; one read-only transaction."""
    summary = Summary(rubric_version=rubric.version, since=since, until=until, limit=limit)
    async with transaction(sessions) as session:
        async for chunk in service.rescored(session, rubric, since, until):
            for row, outcome in chunk:
                summary.add(row, outcome)
    return summary


async def replay(sessions: SessionFactory, producer: EventProducer, rubric: Rubric, since: datetime,
                 until: datetime) -> ReplayCounts:
    """Store and publish the re-scores not stored yet. Each chunk is one transaction that commits only after its
    events are acknowledged by Kafka, so a failed run leaves nothing half-done to skip next time."""
    counts = ReplayCounts()
    async with transaction(sessions) as reading:
        async for chunk in service.rescored(reading, rubric, since, until):
            now = utcnow()
            events = [replay_event(service.assessed_event(row), rubric, outcome, now) for row, outcome in chunk]
            async with transaction(sessions) as session:
                stored = await service.store_rescores(session, rubric, events, now)
                await producer.send_events([(Topic.assessments, event) for event in events
                                            if event.report_id in stored])
            counts.add(chunk, len(stored))
    return counts


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
