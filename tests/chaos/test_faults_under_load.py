"""The fault suite (issue 11, item 10): under a steady load of retrying clients, kill each service, kill Kafka,
restart PostgreSQL immediately and stop it for 20 s — then prove that every accepted report was assessed exactly
once and notified exactly once, that nothing was dead-lettered, and that no 5xx other than 503 was answered.

Clients retry each report with the same Idempotency-Key until it gets a 202, so "accepted" is exact: the set of
report ids the clients were given. A connection refused or dropped while a process is dead is expected (there is
nobody to answer) and counted apart from HTTP answers.

Every property is checked and reported before the test fails, so one run shows every shortfall with its figures.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections import Counter, defaultdict
from typing import Any

import asyncpg
import httpx
import pytest
from sqlalchemy.engine import make_url

from shared.events import RiskLevel, Topic
from tests.chaos.support import (
    BODIES,
    REGION,
    SUMMARIES,
    FaultPlan,
    Platform,
    Receipt,
    Receiver,
    SteadyLoad,
    check_properties,
    outcome_counts,
    restart,
)
from tests.conftest import ADMIN_TOKEN, KafkaReader

pytestmark = [pytest.mark.chaos, pytest.mark.e2e]

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
RATE = float(os.environ.get("CHAOS_RATE", "10"))  # reports per second
MAX_REPORTS = int(os.environ.get("CHAOS_MAX_REPORTS", "3000"))  # a bound, never reached at the default pace
SETTLE = float(os.environ.get("CHAOS_SETTLE_SECONDS", "6"))  # normal load between two faults
OUTAGE = 20.0  # PostgreSQL stopped this long (issue 11)
DRAIN_TIMEOUT = float(os.environ.get("CHAOS_DRAIN_SECONDS", "150"))


def test_faults_under_steady_load_lose_nothing_repeat_nothing_and_answer_honestly(
    platform: Platform, receiver: Receiver
) -> None:
    for path, kind in BODIES.items():
        created = httpx.post(f"{platform.alerts.url}/v1/bodies", headers=ADMIN, timeout=30, json={
            "name": f"南京市鼓楼区{'总工会' if kind == 'union' else '劳动人事争议调解中心'}", "kind": kind,
            "level": "county", "region_code": REGION,
            "channels": [{"type": "webhook", "url": receiver.url(path), "secret": f"chaos-{path}-secret-0123456789"}],
        })
        assert created.status_code == 201, created.text
    unit = httpx.post(f"{platform.intake.url}/v1/units", headers=ADMIN, timeout=30,
                      json={"name": "鼓楼区某街道工会", "region_code": REGION})
    assert unit.status_code == 201, unit.text

    load = SteadyLoad(platform.intake.url, unit.json()["api_key"], rate=RATE, max_reports=MAX_REPORTS)
    plan = FaultPlan(settle=SETTLE)
    stack = platform.stack
    load.start()
    time.sleep(SETTLE)
    plan.run("SIGKILL intake", restart(platform.intake))
    plan.run("SIGKILL risk", restart(platform.risk))
    plan.run("SIGKILL alerts", restart(platform.alerts))
    plan.run("SIGKILL Kafka", stack.kill_and_restart_kafka)
    plan.run("PostgreSQL restart -m immediate", stack.restart_postgres_immediately)
    plan.run(f"PostgreSQL stopped {OUTAGE:.0f} s", lambda: stack.postgres_outage(OUTAGE))
    load.stop_sending()
    load_finished = load.wait(timeout=load.give_up_after + 30)
    load_done = time.monotonic()

    accepted = load.accepted
    drained, milestones = _wait_for_drain(platform, receiver, set(accepted), DRAIN_TIMEOUT)
    drain_seconds = time.monotonic() - load_done
    time.sleep(3)  # late copies (a redelivered batch, a retried delivery) would arrive now: let them be seen

    facts = asyncio.run(_collect(platform))
    receipts = receiver.snapshot()
    failures = check_properties(load, facts, receipts, receiver.malformed)
    if not load_finished:
        failures.append("the load did not finish: some reports were still being retried")
    if not drained:
        failures.append(f"the pipeline did not drain within {DRAIN_TIMEOUT:.0f} s after the load")
    summary = _summary(load, plan, facts, receipts, drain_seconds, failures) + (
        f"\ndrain milestones (s after the last client finished): "
        f"{', '.join(f'{name} {at:.0f}' for name, at in milestones.items())}"
        f"\nservice logs: {platform.intake.log_path.parent}")
    SUMMARIES.append(summary)
    assert not failures, "\n".join(["the fault suite found:", *failures, "", summary])


# --- waiting and collecting ------------------------------------------------------------------------------------------


def _dsn(platform: Platform) -> str:
    url = make_url(platform.env["DATABASE_URL"]).set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


async def _fetch(platform: Platform, sql: str) -> list[asyncpg.Record]:
    connection = await asyncpg.connect(_dsn(platform), timeout=10)
    try:
        return list(await connection.fetch(sql))
    finally:
        await connection.close()


def _wait_for_drain(platform: Platform, receiver: Receiver, accepted: set[str],
                    timeout: float) -> tuple[bool, dict[str, float]]:
    """Every accepted report assessed, every assessment handled by alerts, no delivery pending, and every alerting
    report heard by both bodies. Returns whether that happened and when (s from now) each part was first true."""
    start = time.monotonic()
    milestones: dict[str, float] = {}
    while time.monotonic() < start + timeout:
        try:
            assessed = asyncio.run(_fetch(platform, "SELECT report_id, level FROM risk.assessments"))
            processed = asyncio.run(_fetch(platform, "SELECT count(*) AS n FROM alerts.processed_events"))[0]["n"]
            pending = asyncio.run(_fetch(
                platform, "SELECT count(*) AS n FROM alerts.deliveries WHERE state = 'pending'"))[0]["n"]
        except (OSError, asyncpg.PostgresError):
            time.sleep(2)
            continue
        levels = {row["report_id"]: row["level"] for row in assessed}
        heard: dict[str, set[str]] = defaultdict(set)
        for receipt in receiver.snapshot():
            for report_id in receipt.report_ids:
                heard[report_id].add(receipt.path)
        alerting = {r for r in accepted if levels.get(r) and RiskLevel(levels[r]).alerts}
        parts = {
            "assessed": accepted <= levels.keys(),
            "handled by alerts": processed >= len(levels),
            "no delivery pending": pending == 0,
            "heard by both bodies": all(len(heard[r]) == len(BODIES) for r in alerting),
        }
        for name, done in parts.items():
            if done:
                milestones.setdefault(name, time.monotonic() - start)
        if all(parts.values()):
            return True, milestones
        time.sleep(2)
    return False, milestones


async def _collect(platform: Platform) -> dict[str, Any]:
    reader = KafkaReader(platform.env["KAFKA_BOOTSTRAP_SERVERS"], platform.topic_prefix)
    events: dict[str, set[str]] = defaultdict(set)
    for record in await reader.read_all(Topic.assessments.value, idle_ms=2000):
        event = json.loads(record.value)  # type: ignore[attr-defined]
        events[event["report_id"]].add(event["event_id"])
    dead = {topic.dlq: len(await reader.read_all(topic.dlq, idle_ms=2000)) for topic in Topic}
    return {
        "intake_reports": [row["id"] for row in await _fetch(platform, "SELECT id FROM intake.reports")],
        "assessments": [dict(row) for row in await _fetch(
            platform, "SELECT report_id, event_id, level FROM risk.assessments")],
        "deliveries": Counter(row["state"] for row in await _fetch(platform, "SELECT state FROM alerts.deliveries")),
        "topic_event_ids": events,
        "dead_letters": dead,
    }


# --- the summary -----------------------------------------------------------------------------------------------------


def _summary(load: SteadyLoad, plan: FaultPlan, facts: dict[str, Any], receipts: list[Receipt], drain: float,
             failures: list[str]) -> str:
    t0 = load.started_at
    accepted = set(load.accepted)
    levels = Counter(row["level"] for row in facts["assessments"] if row["report_id"] in accepted)
    alerting = sum(n for level, n in levels.items() if RiskLevel(level).alerts)
    notified = len({r for receipt in receipts for r in receipt.report_ids})
    deliveries = len({receipt.delivery_id for receipt in receipts})
    statuses = outcome_counts(load.observations)
    attempts = [s.attempts for s in load.submissions]
    lines = [
        f"load: {RATE:g} reports/s for {(plan.records[-1].window_end - t0) if plan.records else 0:.0f} s; "
        f"sent {len(load.submissions)}, accepted {len(accepted)}, assessed "
        f"{sum(1 for row in facts['assessments'] if row['report_id'] in accepted)} "
        f"({', '.join(f'{k} {v}' for k, v in sorted(levels.items()))}), alerting {alerting}, notified {notified} "
        f"({deliveries} delivery ids, {len(receipts)} webhook requests, "
        f"{len(receipts) - deliveries} repeats of a delivery id)",
        f"attempts per report: max {max(attempts, default=0)}, total {sum(attempts)}",
        f"answers seen: {dict(sorted(statuses.items()))}; transport errors: {dict(load.transport_errors)}",
        f"dead letters: {facts['dead_letters']}; deliveries by state: {dict(facts['deliveries'])}",
        f"drained {drain:.0f} s after the last client finished",
        "faults (start, back after, answers in the fault's window):",
    ]
    for record in plan.records:
        window = outcome_counts(load.observations, record.started, record.window_end)
        back = record.recovered - record.started
        lines.append(f"  t+{record.started - t0:5.1f} s  {record.name:<34} back after {back:5.1f} s"
                     f"  {dict(sorted(window.items()))}")
    lines.append("result: " + ("every property held" if not failures else f"{len(failures)} properties failed"))
    lines += [f"  - {failure}" for failure in failures]
    return "\n".join(lines)
