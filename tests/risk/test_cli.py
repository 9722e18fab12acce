"""`python -m services.risk.cli` against a real risk process, Kafka and PostgreSQL: what-if re-scores write
nothing, replays publish one `replay=True` event per report and can be run again without publishing twice."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from shared.events import AlertChanged, AlertState, ReportAccepted, RiskLevel, Topic
from shared.kafka import EventProducer
from shared.report import ReportKind
from tests.conftest import KafkaReader, StartService
from tests.factories import credit_code, make_accepted
from tests.support.processes import REPO

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

RUBRIC = REPO / "services" / "risk" / "rubrics" / "task7-v1.yaml"
TEST_VERSION = "task7-test"


@dataclass
class World:
    env: dict[str, str]
    db: AsyncEngine
    reports: dict[str, ReportAccepted]
    now: datetime

    async def scalar(self, sql: str) -> Any:
        async with self.db.connect() as connection:
            return (await connection.execute(text(sql))).scalar()

    async def wait_for(self, sql: str, expected: Any, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = await self.scalar(sql)
            if value == expected:
                return
            await asyncio.sleep(0.2)
        pytest.fail(f"timed out waiting on {sql!r}: {value!r}, expected {expected!r}")

    async def on_topic(self) -> list[dict[str, Any]]:
        reader = KafkaReader(self.env["KAFKA_BOOTSTRAP_SERVERS"], self.env["KAFKA_TOPIC_PREFIX"])
        return [json.loads(record.value) for record in await reader.read_all(Topic.assessments.value)]  # type: ignore[attr-defined]

    async def cli(self, *args: str) -> str:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "services.risk.cli", *args, cwd=REPO, env={**os.environ, **self.env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(process.communicate(), 60)
        assert process.returncode == 0, err.decode()
        return out.decode()

    def name_of(self, report_id: str) -> str:
        return next(name for name, accepted in self.reports.items() if accepted.report_id == report_id)


def dispute(now: datetime, days_ago: int, workers: int, dispute_type: str = "wages", migrant: int = 0,
            code: str | None = None) -> ReportAccepted:
    return make_accepted(  # type: ignore[no-any-return]
        kind="dispute", workers_involved=workers, migrant_workers_involved=migrant,
        dispute={"dispute_type": dispute_type, "stage": "negotiation"},
        enterprise={"credit_code": code or credit_code()}, occurred_at=(now - timedelta(days=days_ago)).isoformat(),
    )


@pytest_asyncio.fixture(loop_scope="session")
async def world(isolated_env: dict[str, str], start_service: StartService) -> AsyncIterator[World]:
    """A risk process that has assessed seven dispute reports (scores under task7-v1 in the comments)."""
    start_service("risk", **isolated_env)
    now = datetime.now(UTC)
    repeat, alerted = credit_code(), credit_code()
    reports = {
        "A": dispute(now, 20, workers=45, migrant=20),         # C1 15 + C8 5 + C12 5 = 25 blue
        "B": dispute(now, 15, workers=5),                      # C1 3 + C12 5 = 8 none
        "C": dispute(now, 12, workers=1),                      # C12 5 = 5 none
        "D": make_accepted(kind="dispute", workers_involved=350, migrant_workers_involved=0,  # 50, F3 70 red
                           collective_action=["road_blocking"], occurred_at=(now - timedelta(days=8)).isoformat()),
        "E1": dispute(now, 10, workers=30, dispute_type="overtime", code=repeat),  # C1 15 + C12 3 = 18 blue
        "E2": dispute(now, 5, workers=30, dispute_type="overtime", code=repeat),   # + C16 5 = 23 blue
        "F": dispute(now, 3, workers=30, dispute_type="overtime", code=alerted),   # + C17 5 = 23 blue
    }
    producer = EventProducer(isolated_env["KAFKA_BOOTSTRAP_SERVERS"], client_id="cli-tests",
                             topic_prefix=isolated_env["KAFKA_TOPIC_PREFIX"])
    db = create_async_engine(isolated_env["DATABASE_URL"])
    world = World(isolated_env, db, reports, now)
    try:
        opened = AlertChanged(trace_id="t", event_type="alert.opened", alert_id="alert-F", credit_code=alerted,
                              kind=ReportKind.dispute, level=RiskLevel.yellow, state=AlertState.open,
                              report_ids=["earlier"])
        await producer.send_events([(Topic.alerts, opened)])
        await world.wait_for("SELECT count(*) FROM risk.alert_states", 1)
        # E1 and E2 share a key, so E1 is assessed first and counts in E2's history.
        await producer.send_events([(Topic.reports, accepted) for accepted in reports.values()])
        await world.wait_for("SELECT count(*) FROM risk.assessments", len(reports))
        yield world
    finally:
        await producer.stop()
        await db.dispose()


@pytest.fixture
def raised_scale_rubric(tmp_path: Path) -> Path:
    """task7-v1 with 10 more points in every C1 band, as version task7-test."""
    rubric = yaml.safe_load(RUBRIC.read_text(encoding="utf-8"))
    rubric["version"] = TEST_VERSION
    scale = next(criterion for criterion in rubric["criteria"] if criterion["id"] == "C1")
    for band in scale["bands"]:
        band["points"] += 10
    path = tmp_path / f"{TEST_VERSION}.yaml"
    path.write_text(yaml.safe_dump(rubric, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


async def test_whatif_lists_the_level_changes_of_another_rubric_and_writes_nothing(
    world: World, raised_scale_rubric: Path
) -> None:
    before = (await world.scalar("SELECT count(*) FROM risk.assessments"),
              await world.scalar("SELECT count(*) FROM risk.rescores"), len(await world.on_topic()))

    summary = json.loads(await world.cli("whatif", "--rubric", str(raised_scale_rubric), "--json"))
    limited = json.loads(await world.cli("whatif", "--rubric", str(raised_scale_rubric), "--json", "--limit", "1"))
    text_output = await world.cli("whatif", "--rubric", str(raised_scale_rubric))

    assert summary["reports"] == 7
    assert summary["stored_rubric_versions"] == ["task7-v1"]
    # E2 needs its earlier report (C16) and F its open alert (C17) to reach yellow: both histories were rebuilt.
    assert {(world.name_of(c["report_id"]), c["from"], c["to"], c["score_from"], c["score_to"])
            for c in summary["changes"]} == {
        ("A", "blue", "yellow", 25, 35), ("B", "none", "blue", 8, 18),
        ("E2", "blue", "yellow", 23, 33), ("F", "blue", "yellow", 23, 33),
    }
    assert (summary["changed"], summary["raised"], summary["lowered"]) == (4, 4, 0)
    transitions = {(old, new): count for old, row in summary["matrix"].items() for new, count in row.items() if count}
    assert transitions == {("blue", "yellow"): 3, ("none", "blue"): 1, ("none", "none"): 1, ("red", "red"): 1,
                           ("blue", "blue"): 1}
    assert limited["changed"] == 4
    assert len(limited["changes"]) == 1
    assert "等级变化 / Level changes: 4" in text_output
    after = (await world.scalar("SELECT count(*) FROM risk.assessments"),
             await world.scalar("SELECT count(*) FROM risk.rescores"), len(await world.on_topic()))
    assert after == before


async def test_whatif_with_the_rubric_in_force_changes_nothing(world: World) -> None:
    summary = json.loads(await world.cli("whatif", "--rubric", "task7-v1", "--json"))
    in_range = json.loads(await world.cli(
        "whatif", "--rubric", "task7-v1", "--json",
        "--since", (world.now - timedelta(days=13)).isoformat(), "--until", (world.now - timedelta(days=4)).isoformat(),
    ))

    assert (summary["reports"], summary["changed"]) == (7, 0)
    assert (in_range["reports"], in_range["changed"]) == (4, 0)


async def test_replay_publishes_one_replay_event_per_report_in_range_and_only_once(
    world: World, raised_scale_rubric: Path
) -> None:
    window = ["--since", (world.now - timedelta(days=13)).isoformat(),
              "--until", (world.now - timedelta(days=4)).isoformat()]
    originals = len(await world.on_topic())

    first = json.loads(await world.cli("replay", "--rubric", str(raised_scale_rubric), *window, "--json"))
    after_first = await world.on_topic()
    second = json.loads(await world.cli("replay", "--rubric", str(raised_scale_rubric), *window, "--json"))
    after_second = await world.on_topic()

    assert (first["reports"], first["published"], first["already_replayed"]) == (4, 4, 0)
    assert (second["reports"], second["published"], second["already_replayed"]) == (4, 0, 4)
    replays = [event for event in after_first if event["replay"]]
    assert len(after_first) == originals + 4
    assert sorted(world.name_of(event["report_id"]) for event in replays) == ["C", "D", "E1", "E2"]
    assert {event["rubric_version"] for event in replays} == {TEST_VERSION}
    assert {world.name_of(e["report_id"]): (e["level"], e["score"]) for e in replays} == {
        "C": ("none", 5), "D": ("red", 70), "E1": ("blue", 28), "E2": ("yellow", 33),
    }
    assert len(after_second) == len(after_first)
    assert await world.scalar("SELECT count(*) FROM risk.rescores") == 4
    assert await world.scalar("SELECT count(*) FROM risk.assessments") == 7
