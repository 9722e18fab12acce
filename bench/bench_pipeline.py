"""Risk catch-up on real Kafka and PostgreSQL: `python -m bench.bench_pipeline`.

Starts Kafka and PostgreSQL with the native harness (if they are not running), makes a fresh database and topic
prefix, pre-fills `reports.v1` with `--reports` accepted reports (a backlog, as after an outage), then starts one
risk process and waits until every report is stored in `risk.assessments`. Prints the reports assessed per second
by that one worker, from its first stored assessment to its last (start-up and group join are not counted), and
the risk process's CPU time per report (user + system, from /proc, over the reports assessed while it was watched:
the figure that holds on a shared box). `--profile FILE` records a py-spy profile of the risk process meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg

from bench.bench_scoring import random_report
from bench.profile import Profiler, summarise
from bench.stack import Infra, asyncpg_dsn, harness_down, harness_up, stack
from services.intake.validation import make_credit_code
from shared.events import ReportAccepted, Topic
from shared.kafka import EventProducer


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


async def publish(env: dict[str, str], reports: list[ReportAccepted], chunk: int) -> float:
    """Publish the backlog; returns the seconds it took."""
    producer = EventProducer(env["KAFKA_BOOTSTRAP_SERVERS"], client_id="bench",
                             topic_prefix=env["KAFKA_TOPIC_PREFIX"])
    try:
        await producer.send_events([])  # connect before the clock starts
        started = time.perf_counter()
        for start in range(0, len(reports), chunk):
            await producer.send_events([(Topic.reports, event) for event in reports[start:start + chunk]])
        return time.perf_counter() - started
    finally:
        await producer.stop()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


@dataclass(frozen=True)
class Watched:
    consuming_s: float
    first_instant: int
    cpu_s: float  # CPU time of the risk process while `cpu_reports` reports were assessed
    cpu_reports: int


async def wait_assessed(database_url: str, count: int, timeout: float, pid: int) -> Watched:
    """Seconds from the first stored assessment to the last, how many were stored in the first instant, and the
    risk process's CPU time over the reports assessed while watching."""
    db = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        deadline = time.monotonic() + timeout
        cpu_start = cpu_seconds(pid)
        stored_start = stored = await db.fetchval("SELECT count(*) FROM risk.assessments")
        while stored < count:
            if time.monotonic() > deadline:
                sys.exit(f"only {stored} of {count} reports assessed in {timeout:.0f} s")
            await asyncio.sleep(0.2)
            stored = await db.fetchval("SELECT count(*) FROM risk.assessments")
        cpu = cpu_seconds(pid) - cpu_start
        first, last = await db.fetchrow("SELECT min(assessed_at), max(assessed_at) FROM risk.assessments")
        in_first = await db.fetchval("SELECT count(*) FROM risk.assessments WHERE assessed_at = $1", first)
    finally:
        await db.close()
    return Watched((last - first).total_seconds(), in_first, cpu, stored - stored_start)


@dataclass(frozen=True)
class CatchUp:
    reports: int
    published_s: float
    consuming_s: float
    first_instant: int  # assessments stored with the very first timestamp (not counted in the rate)
    cpu_s: float = 0.0
    cpu_reports: int = 0

    @property
    def per_second(self) -> float:
        return (self.reports - self.first_instant) / max(self.consuming_s, 1e-9)

    @property
    def cpu_per_report_us(self) -> float:
        """Microseconds of the risk process's CPU per report assessed (user + system)."""
        return 1e6 * self.cpu_s / max(self.cpu_reports, 1)


def catch_up(infra: Infra, *, reports: int = 20_000, enterprises: int = 2_000, batch_size: int | None = None,
             publish_chunk: int = 1_000, timeout: float = 300.0, profile: Path | None = None) -> CatchUp:
    """One risk worker consuming a pre-filled backlog of `reports` on a stack of its own (and, with `profile`, a
    py-spy profile of it while it consumes, in py-spy's raw format)."""
    backlog = make_reports(reports, enterprises)
    published: list[float] = []

    def prefill(env: dict[str, str]) -> None:
        published.append(asyncio.run(publish(env, backlog, publish_chunk)))

    # The service's own default batch size unless one is given.
    settings = {} if batch_size is None else {"RISK_CONSUMER_BATCH_SIZE": str(batch_size)}
    with stack(infra, ("risk",), prepare=prefill, **settings) as running:
        pid = running.pid("risk")
        profiler = Profiler(pid, profile, seconds=timeout) if profile is not None else None
        watched = asyncio.run(wait_assessed(running.env["DATABASE_URL"], reports, timeout, pid))
        if profiler is not None:
            profiler.process.send_signal(signal.SIGINT)  # py-spy writes what it has sampled so far
            profiler.finish()
    return CatchUp(reports, published[0], watched.consuming_s, watched.first_instant, watched.cpu_s,
                   watched.cpu_reports)


def main() -> None:
    options = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    options.add_argument("--reports", type=int, default=20_000)
    options.add_argument("--enterprises", type=int, default=2_000, help="distinct credit codes (history per code)")
    options.add_argument("--batch-size", type=int, help="RISK_CONSUMER_BATCH_SIZE (default: the service's own)")
    options.add_argument("--publish-chunk", type=int, default=1_000, help="reports per producer round trip")
    options.add_argument("--timeout", type=float, default=300.0, help="give up after this many seconds")
    options.add_argument("--profile", type=Path, help="write a py-spy profile (raw) of the risk process here")
    arguments = options.parse_args()

    infra = harness_up()
    try:
        figures = catch_up(infra, reports=arguments.reports, enterprises=arguments.enterprises,
                           batch_size=arguments.batch_size, publish_chunk=arguments.publish_chunk,
                           timeout=arguments.timeout, profile=arguments.profile)
    finally:
        harness_down(infra)
    count = arguments.reports
    sys.stdout.write(
        f"risk catch-up: {count} reports over {arguments.enterprises} enterprises pre-filled on reports.v1 "
        f"(published in {figures.published_s:.2f} s), consumer batch {arguments.batch_size or 'default'}, "
        f"one risk process\n"
        f"  consuming: {figures.consuming_s:.2f} s from first to last stored assessment: "
        f"{figures.per_second:,.0f} reports/s per worker\n"
        f"  risk process CPU: {figures.cpu_per_report_us:,.0f} µs per report (user + system, over "
        f"{figures.cpu_reports} reports)\n"
    )
    if arguments.profile is not None:
        sys.stdout.write(summarise(arguments.profile, top=25) + "\n")


if __name__ == "__main__":
    main()
