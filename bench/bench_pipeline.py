"""End-to-end throughput of the risk consumer on real Kafka and PostgreSQL: `python -m bench.bench_pipeline`.

Starts Kafka and PostgreSQL with the native harness (if they are not running), makes a fresh database and topic
prefix, runs the risk service as a process, publishes `--reports` accepted reports to `reports.v1` and waits until
every one is stored in `risk.assessments`. Prints the publish rate and the reports assessed per second, from the
first publish to the last stored assessment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url

from bench.bench_scoring import random_report
from services.intake.validation import make_credit_code
from shared.events import ReportAccepted, Topic
from shared.kafka import EventProducer, ensure_topics
from tests.support.processes import REPO, ServiceProcess

ADMIN_TOKEN = "bench-admin-token-0123456789abcdefghij"


def harness_up() -> dict[str, str]:
    result = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "local" / "harness.py"), "up", "--infra", "--json"],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )
    if result.returncode != 0:
        sys.exit(f"the harness could not start Kafka and PostgreSQL:\n{result.stderr[-4000:]}")
    info: dict[str, str] = json.loads(result.stdout)
    return info


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def admin_sql(maintenance_url: str, sql: str) -> None:
    connection = await asyncpg.connect(asyncpg_dsn(maintenance_url))
    try:
        await connection.execute(sql)
    finally:
        await connection.close()


@contextmanager
def fresh_database(maintenance_url: str) -> Iterator[str]:
    name = f"bench_{uuid.uuid4().hex[:10]}"
    asyncio.run(admin_sql(maintenance_url, f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(maintenance_url).set(database=name).render_as_string(hide_password=False)
    finally:
        asyncio.run(admin_sql(maintenance_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def make_reports(count: int, enterprises: int, seed: int = 11) -> list[ReportAccepted]:
    """Varied reports (bench_scoring's generator) spread over `enterprises` credit codes."""
    rng = random.Random(seed)
    codes = [make_credit_code(f"91320100{n:09d}") for n in range(enterprises)]
    accepted = []
    for _ in range(count):
        report = random_report(rng)
        enterprise = report.enterprise.model_copy(update={"credit_code": rng.choice(codes)})
        report_id = str(uuid.uuid4())
        accepted.append(ReportAccepted(trace_id=report_id, report_id=report_id, unit_id="bench",
                                       accepted_at=datetime.now(UTC),
                                       report=report.model_copy(update={"enterprise": enterprise})))
    return accepted


def wait_for_assignment(process: ServiceProcess, timeout: float = 60.0) -> None:
    """The consumer has joined its group, so that joining is not counted as processing time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if '"partitions assigned"' in process.log_text():
            return
        time.sleep(0.2)
    sys.exit(f"the risk consumer did not join its group in {timeout:.0f} s:\n{process.tail()}")


async def publish_and_wait(env: dict[str, str], reports: list[ReportAccepted], chunk: int,
                           timeout: float) -> dict[str, float]:
    producer = EventProducer(env["KAFKA_BOOTSTRAP_SERVERS"], client_id="bench",
                             topic_prefix=env["KAFKA_TOPIC_PREFIX"])
    await producer.send_events([])  # connect before the clock starts
    db = await asyncpg.connect(asyncpg_dsn(env["DATABASE_URL"]))
    try:
        started_at = datetime.now(UTC)
        started = time.perf_counter()
        for start in range(0, len(reports), chunk):
            await producer.send_events([(Topic.reports, event) for event in reports[start:start + chunk]])
        published = time.perf_counter() - started
        deadline = time.monotonic() + timeout
        stored = 0
        while stored < len(reports):
            if time.monotonic() > deadline:
                sys.exit(f"only {stored} of {len(reports)} reports assessed in {timeout:.0f} s")
            await asyncio.sleep(0.2)
            stored = await db.fetchval("SELECT count(*) FROM risk.assessments")
        first, last = await db.fetchrow("SELECT min(assessed_at), max(assessed_at) FROM risk.assessments")
    finally:
        await db.close()
        await producer.stop()
    return {
        "published_s": published,
        "end_to_end_s": (last - started_at).total_seconds(),
        "first_assessed_after_s": (first - started_at).total_seconds(),
        "consuming_s": (last - first).total_seconds(),
    }


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--reports", type=int, default=20_000)
    options.add_argument("--enterprises", type=int, default=2_000, help="distinct credit codes (history per code)")
    options.add_argument("--batch-size", type=int, default=500, help="RISK_CONSUMER_BATCH_SIZE")
    options.add_argument("--publish-chunk", type=int, default=1_000, help="reports per producer round trip")
    options.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    arguments = options.parse_args()

    infra = harness_up()
    reports = make_reports(arguments.reports, arguments.enterprises)
    with fresh_database(infra["database_url"]) as database_url, tempfile.TemporaryDirectory() as logs:
        prefix = f"bench{uuid.uuid4().hex[:8]}."
        asyncio.run(ensure_topics(infra["kafka_bootstrap_servers"], prefix))
        env = {"ENVIRONMENT": "test", "DATABASE_URL": database_url, "ADMIN_TOKEN": ADMIN_TOKEN,
               "KAFKA_BOOTSTRAP_SERVERS": infra["kafka_bootstrap_servers"], "KAFKA_TOPIC_PREFIX": prefix,
               "RISK_CONSUMER_BATCH_SIZE": str(arguments.batch_size), "LOG_LEVEL": "INFO"}
        risk = ServiceProcess("risk", env, Path(logs)).start()
        try:
            wait_for_assignment(risk)
            figures = asyncio.run(publish_and_wait(env, reports, arguments.publish_chunk, arguments.timeout))
        finally:
            risk.stop()
    if infra.get("started"):
        subprocess.run([sys.executable, str(REPO / "deploy" / "local" / "harness.py"), "down"], cwd=REPO,
                       check=False, capture_output=True)

    count = arguments.reports
    lines = [
        f"risk pipeline: {count} reports over {arguments.enterprises} enterprises, consumer batch "
        f"{arguments.batch_size}, one risk process",
        f"  publish:     {figures['published_s']:.2f} s  ({count / figures['published_s']:,.0f} reports/s)",
        f"  end to end:  {figures['end_to_end_s']:.2f} s from first publish to last stored assessment  "
        f"({count / figures['end_to_end_s']:,.0f} reports assessed/s)",
        f"  consuming:   {figures['consuming_s']:.2f} s from first to last stored assessment  "
        f"({count / max(figures['consuming_s'], 1e-9):,.0f} reports/s; first stored after "
        f"{figures['first_assessed_after_s']:.2f} s)",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
