"""The inbox lists, the export, the situation counts and the watch list as the archive grows:
`python -m bench --only lists` (or `python -m bench.bench_lists`).

One alerts process (real, default settings) on a fresh database. First it consumes a few hundred real
`report.assessed` events (varied reports scored by the real rubric, across Jiangsu's counties): the real rows. Then
the alerts schema is filled by cloning them in SQL (`INSERT ... SELECT ... FROM generate_series`): alerts with their
notifications (the county union and the city union of each alert's region), and assessed reports. Names, credit
codes, counties, industries, levels, states and times vary with the row number (counties and levels by a hash of
it, so that they are independent); everything else is the real row's. The assessed reports' clones go through the
rollup trigger like any insert (one statement per 100,000 rows), so the situation's and the watch list's rollups
are filled as production would fill them. Open clones are past their deadline with
escalation exhausted (as an archive's would be), so the escalation worker leaves them alone while measuring.
Stages: 10^4, 10^5 and 10^6 alerts with as many assessed reports. After each fill, `VACUUM ANALYZE` (what
autovacuum does in production), then each query below is sent over HTTP `--samples` times after two warm-ups, one
at a time, and its p50 and p99 printed (end to end: HTTP, authentication, the queries, the JSON); and the list's
page statement alone is timed by PostgreSQL (`EXPLAIN ANALYZE`). `--only situation,"watch list"` measures those
queries alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
from sqlalchemy.dialects.postgresql.asyncpg import dialect as asyncpg_dialect

from bench.bench_scoring import random_report
from bench.stack import ADMIN, Infra, Stack, asyncpg_dsn, harness_down, harness_up, stack
from services.alerts import repository
from services.risk.scoring import load_rubric, score_report
from shared import regions
from shared.events import ReportAssessed, Topic
from shared.kafka import EventProducer
from shared.report import Report

STAGES = (10_000, 100_000, 1_000_000)
SEED_EVENTS = 300
TARGET_MS = 50.0
COUNTY = "320106"  # 南京市鼓楼区: the county union whose view is measured
CITY = "320100"  # 南京市: the city union whose view is measured
WORDS = ("精工机械", "建筑劳务", "港城物流", "纺织印染", "电子科技", "餐饮管理", "物业服务", "汽车零部件", "新材料",
         "食品加工", "服装制造", "化工", "家具", "包装印刷", "快递服务", "外卖配送", "装饰工程", "钢结构", "医疗器械",
         "软件信息")
INDUSTRY_MIX = "CCCCCCEEEEEFFGGHHIKLMNOABDJPQRS"  # manufacturing and construction most often
# Kept by the trigger on assessed_reports while the clones are inserted (migration 20261127_situation01).
ROLLUPS = ("report_counts", "report_counts_by_industry", "watched_enterprises")


def say(text: str) -> None:
    sys.stdout.write(text + "\n")
    sys.stdout.flush()


def progress(text: str) -> None:
    sys.stderr.write(f"[bench lists {time.strftime('%H:%M:%S')}] {text}\n")
    sys.stderr.flush()


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f}"


# --- the real rows -------------------------------------------------------------------------------------------------


def seed_events(count: int, seed: int = 5) -> list[ReportAssessed]:
    """Varied reports across Jiangsu's counties, scored by the real rubric, one enterprise each."""
    rng = random.Random(seed)
    rubric = load_rubric()
    counties = [county.code for city in regions.cities() for county in regions.counties_of(city.code)]
    events = []
    for n in range(count):
        report = random_report(rng)
        name = f"{rng.choice(WORDS)}{n:04d}有限公司"
        enterprise = report.enterprise.model_copy(update={
            "credit_code": f"91320100{n:09d}X"[:18], "name": name, "industry": rng.choice(INDUSTRY_MIX)})
        report = Report.model_validate({**report.model_dump(), "enterprise": enterprise.model_dump(),
                                        "region_code": rng.choice(counties),
                                        "summary": "工地拖欠职工工资,职工情绪不稳,已多次协商未果。"})
        outcome = score_report(rubric, report)
        report_id = str(uuid.uuid4())
        now = datetime.now(UTC)
        events.append(ReportAssessed(
            trace_id=report_id, report_id=report_id, accepted_at=now, report=report, score=outcome.score,
            level=outcome.level, rubric_version=outcome.rubric_version, reasons=list(outcome.reasons),
            assessed_at=now, ack_deadline_seconds=rubric.ack_deadline_seconds(outcome.level)))
    return events


async def publish_seed(env: dict[str, str], events: list[ReportAssessed]) -> None:
    producer = EventProducer(env["KAFKA_BOOTSTRAP_SERVERS"], client_id="bench-lists",
                             topic_prefix=env["KAFKA_TOPIC_PREFIX"])
    try:
        await producer.send_events([(Topic.assessments.value, event) for event in events])
    finally:
        await producer.stop()
    db = await asyncpg.connect(asyncpg_dsn(env["DATABASE_URL"]))
    try:
        deadline = time.monotonic() + 120
        while await db.fetchval("SELECT count(*) FROM alerts.assessed_reports") < len(events):
            if time.monotonic() > deadline:
                sys.exit("the alerts consumer did not store the seed reports in 120 s")
            await asyncio.sleep(0.5)
    finally:
        await db.close()


def create_bodies(running: Stack) -> dict[str, str]:
    """A county union for every county and a city union for every city of Jiangsu; returns the tokens of the two
    whose views are measured."""
    tokens: dict[str, str] = {}
    for city in regions.cities():
        for code, level in ((city.code, "city"), *((c.code, "county") for c in regions.counties_of(city.code))):
            response = httpx.post(f"{running.url('alerts')}/v1/bodies", headers=ADMIN, timeout=30, json={
                "name": f"{regions.name_zh(code)}总工会", "kind": "union", "level": level, "region_code": code,
                "channels": [{"type": "email", "address": "bench@example.org"}]})
            response.raise_for_status()
            if code in (COUNTY, CITY):
                tokens[code] = response.json()["token"]
    return tokens


# --- cloning -------------------------------------------------------------------------------------------------------

PREPARE = """
CREATE TEMP TABLE seed_alerts AS
    SELECT (row_number() OVER (ORDER BY id) - 1)::int AS i, * FROM alerts.alerts;
CREATE TEMP TABLE seed_reports AS
    SELECT (row_number() OVER (ORDER BY report_id) - 1)::int AS i, * FROM alerts.assessed_reports;
CREATE TEMP TABLE places (i int PRIMARY KEY, code text, city_code text, city_zh text, county_body text,
                          city_body text);
"""

CLONE_ALERTS = """
INSERT INTO alerts.alerts (
    id, credit_code, kind, level, state, report_ids, trace_id, enterprise_name, region_code, score, report,
    assessment, first_accepted_at, opened_at, updated_at, deadline_seconds, ack_deadline, escalation_exhausted,
    highest_union_level, acknowledged_at, acknowledged_by, resolved_at, resolved_by, outcome, note,
    first_delivered_at)
SELECT md5('alert' || n)::uuid::text, '9232' || lpad(n::text, 13, '0') || 'X', s.kind, v.level, v.state,
       s.report_ids, s.trace_id, p.city_zh || ($4::text[])[1 + n % 20] || lpad(n::text, 7, '0') || '有限公司',
       p.code, s.score,
       jsonb_set(s.report, '{enterprise,industry}',
                 to_jsonb(substr($5::text, (1 + (n * 7) % length($5::text))::int, 1))),
       s.assessment, t.opened, t.opened, t.opened + interval '1 hour', s.deadline_seconds,
       CASE WHEN v.state = 'open' THEN t.opened + interval '1 hour' END, true, 'city',
       CASE WHEN v.state <> 'open' THEN t.opened + interval '30 minutes' END,
       CASE WHEN v.state <> 'open' THEN p.county_body END,
       CASE WHEN v.state = 'resolved' THEN t.opened + interval '3 days' END,
       CASE WHEN v.state = 'resolved' THEN p.county_body END,
       CASE WHEN v.state = 'resolved' THEN (ARRAY['mediated', 'paid', 'arbitrated', 'expired'])[1 + n % 4] END,
       CASE WHEN v.state = 'resolved' THEN '已处理' END,
       t.opened + interval '1 second'
FROM generate_series($1::bigint, $2::bigint - 1) AS n
JOIN seed_alerts s ON s.i = n % $3
JOIN places p ON p.i = (hashint8(n) & 2147483647) % (SELECT count(*) FROM places)
CROSS JOIN LATERAL (SELECT now() - ((n * 7919) % (730 * 86400)) * interval '1 second' AS opened) t
CROSS JOIN LATERAL (SELECT (ARRAY['red', 'orange', 'orange', 'yellow', 'yellow', 'yellow', 'yellow', 'yellow',
                                  'yellow', 'yellow'])[1 + (hashint8(n + 7) & 2147483647) % 10] AS level,
                           CASE WHEN n % 100 < 3 THEN 'open' WHEN n % 100 < 5 THEN 'acknowledged'
                                ELSE 'resolved' END AS state) v
"""

CLONE_NOTIFICATIONS = """
INSERT INTO alerts.notifications (alert_id, body_id, reason, event_type, at)
SELECT md5('alert' || n)::uuid::text, body, 'routing', 'alert.opened',
       now() - ((n * 7919) % (730 * 86400)) * interval '1 second'
FROM generate_series($1::bigint, $2::bigint - 1) AS n
JOIN places p ON p.i = (hashint8(n) & 2147483647) % (SELECT count(*) FROM places)
CROSS JOIN LATERAL (VALUES (p.county_body), (p.city_body)) AS b(body)
"""

CLONE_REPORTS = """
INSERT INTO alerts.assessed_reports (
    report_id, credit_code, enterprise_name, industry, kind, region_code, city_code, level, score, rubric_version,
    occurred_at, accepted_at, assessed_at, workers_involved, migrant_workers_involved, details, reasons)
SELECT md5('report' || n)::uuid::text, '9232' || lpad((n % $4)::text, 13, '0') || 'X',
       p.city_zh || ($5::text[])[1 + (n % $4) % 20] || lpad((n % $4)::text, 7, '0') || '有限公司',
       substr($6::text, (1 + (n * 7) % length($6::text))::int, 1), s.kind, p.code, p.city_code,
       (ARRAY['none', 'none', 'none', 'none', 'blue', 'blue', 'blue', 'yellow', 'yellow', 'orange', 'orange',
              'red'])[1 + (hashint8(-n) & 2147483647) % 12],
       s.score, s.rubric_version, t.at, t.at + interval '1 hour', t.at + interval '1 hour', s.workers_involved,
       s.migrant_workers_involved, s.details, s.reasons
FROM generate_series($1::bigint, $2::bigint - 1) AS n
JOIN seed_reports s ON s.i = n % $3
JOIN places p ON p.i = (hashint8(n) & 2147483647) % (SELECT count(*) FROM places)
CROSS JOIN LATERAL (SELECT now() - ((n * 7907) % (730 * 86400)) * interval '1 second' AS at) t
"""


async def prepare(db: asyncpg.Connection) -> tuple[int, int]:
    await db.execute(PREPARE)
    bodies = {row["region_code"]: row["id"] for row in await db.fetch("SELECT id, region_code FROM alerts.bodies")}
    places = [(county.code, city.code, city.name_zh, bodies[county.code], bodies[city.code])
              for city in regions.cities() for county in regions.counties_of(city.code)]
    await db.executemany("INSERT INTO places VALUES ($1, $2, $3, $4, $5, $6)",
                         [(i, *place) for i, place in enumerate(places)])
    return (int(await db.fetchval("SELECT count(*) FROM seed_alerts")),
            int(await db.fetchval("SELECT count(*) FROM seed_reports")))


async def fill(db: asyncpg.Connection, seeds: tuple[int, int], start: int, end: int) -> float:
    """Clone alerts [start, end) with their notifications and as many assessed reports; returns seconds."""
    began = time.perf_counter()
    enterprises = max(end // 5, 1)  # five reports per enterprise on average: the watch list groups them
    for low in range(start, end, 100_000):
        high = min(low + 100_000, end)
        await db.execute(CLONE_ALERTS, low, high, seeds[0], list(WORDS), INDUSTRY_MIX)
        await db.execute(CLONE_NOTIFICATIONS, low, high)
        await db.execute(CLONE_REPORTS, low, high, seeds[1], enterprises, list(WORDS), INDUSTRY_MIX)
        progress(f"  cloned {high:,} ({load_average()})")
    for table in ("alerts", "notifications", "assessed_reports", *ROLLUPS):
        await db.execute(f"VACUUM ANALYZE alerts.{table}")
    return time.perf_counter() - began


# --- measuring -----------------------------------------------------------------------------------------------------


@dataclass
class Figure:
    name: str
    p50_ms: float
    p99_ms: float
    rows: int


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def timed(samples: int, call: Callable[[], int]) -> tuple[float, float, int]:
    for _ in range(2):
        rows = call()
    durations = []
    for _ in range(samples):
        started = time.perf_counter()
        rows = call()
        durations.append((time.perf_counter() - started) * 1000)
    return percentile(durations, 50), percentile(durations, 99), rows


def queries(base: str, tokens: dict[str, str], client: httpx.Client) -> list[tuple[str, Callable[[], int]]]:
    admin = ADMIN
    county = {"Authorization": f"Bearer {tokens[COUNTY]}"}
    city = {"Authorization": f"Bearer {tokens[CITY]}"}
    poll_from = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    # A period whose ends fall mid-day and mid-week: partial days read from the reports, whole days and weeks from
    # the rollups.
    edges = {"since": (datetime.now(UTC) - timedelta(days=47, hours=5)).isoformat(),
             "until": (datetime.now(UTC) - timedelta(days=7, hours=3)).isoformat()}
    month = {"since": (datetime.now(UTC) - timedelta(days=230)).isoformat(),
             "until": (datetime.now(UTC) - timedelta(days=200)).isoformat()}

    def get(path: str, headers: dict[str, str], key: str = "items", **params: Any) -> Callable[[], int]:
        def call() -> int:
            response = client.get(f"{base}{path}", params={**params}, headers=headers)
            response.raise_for_status()
            body = response.json()
            return len(body[key]) if key else 1
        return call

    def second_page(headers: dict[str, str], **params: Any) -> Callable[[], int]:
        first = client.get(f"{base}/v1/alerts", params={"limit": 50, **params}, headers=headers).json()
        return get("/v1/alerts", headers, limit=50, cursor=first["next_cursor"], **params)

    def watch_second_page(headers: dict[str, str]) -> Callable[[], int]:
        first = client.get(f"{base}/v1/watchlist", headers=headers).json()
        return get("/v1/watchlist", headers, cursor=first["next_cursor"])

    def export_first_chunk(headers: dict[str, str], **params: Any) -> Callable[[], int]:
        def call() -> int:
            lines = 0
            with client.stream("GET", f"{base}/v1/alerts/export.csv", params=params, headers=headers) as response:
                response.raise_for_status()
                for chunk in response.iter_bytes():
                    lines += chunk.count(b"\n")
                    if lines > 1000:  # the header and the first chunk of 1,000 rows
                        break
            return lines - 1
        return call

    return [
        ("list, admin (limit=50)", get("/v1/alerts", admin, limit=50)),
        ("list, admin, 2nd page (cursor)", second_page(admin)),
        ("list, county body's view", get("/v1/alerts", county, limit=50)),
        ("list, city body's view", get("/v1/alerts", city, limit=50)),
        ("list, admin, state=open&level=red", get("/v1/alerts", admin, limit=50, state="open", level="red")),
        ("list, county body, state=open&level=red", get("/v1/alerts", county, limit=50, state="open", level="red")),
        ("list, admin, kind=dispute", get("/v1/alerts", admin, limit=50, kind="dispute")),
        ("list, admin, region=city 320100", get("/v1/alerts", admin, limit=50, region_code=CITY)),
        ("list, admin, region=county 320106", get("/v1/alerts", admin, limit=50, region_code=COUNTY)),
        ("list, admin, q=name (one enterprise)", get("/v1/alerts", admin, limit=50, q="港城物流0004702")),
        ("list, admin, q=credit code part", get("/v1/alerts", admin, limit=50, q="00000470")),
        ("list, admin, q=common word", get("/v1/alerts", admin, limit=50, q="物流")),
        ("list, county body, q=common word", get("/v1/alerts", county, limit=50, q="物流")),
        ("list, admin, opened in one month", get("/v1/alerts", admin, limit=50, **month)),
        ("list, admin, changed_since (poll)", get("/v1/alerts", admin, limit=50, changed_since=poll_from)),
        ("export, admin, first 1,000 rows", export_first_chunk(admin)),
        ("export, county body, first 1,000 rows", export_first_chunk(county)),
        ("situation, admin (Jiangsu, 12 weeks)", get("/v1/situation", admin, key="counties")),
        ("situation, admin, one year", get("/v1/situation", admin, key="counties",
                                           since=(datetime.now(UTC) - timedelta(days=365)).isoformat())),
        ("situation, city body", get("/v1/situation", city, key="counties")),
        ("situation, county body", get("/v1/situation", county, key="counties")),
        ("situation, admin, 40 days from mid-day", get("/v1/situation", admin, key="counties", **edges)),
        ("watch list, admin (90 days)", get("/v1/watchlist", admin)),
        ("watch list, admin, 2nd page (cursor)", watch_second_page(admin)),
        ("watch list, city body (90 days)", get("/v1/watchlist", city)),
        ("watch list, county body (90 days)", get("/v1/watchlist", county)),
    ]


def selected(name: str, only: tuple[str, ...]) -> bool:
    """Whether a query is measured: every query without `--only`, else those whose name starts with one of them."""
    return not only or name.startswith(only)


def measure(running: Stack, tokens: dict[str, str], samples: int, only: tuple[str, ...] = ()) -> list[Figure]:
    figures = []
    with httpx.Client(timeout=60) as client:
        for name, call in queries(running.url("alerts"), tokens, client):
            if not selected(name, only):
                continue
            p50, p99, rows = timed(samples, call)
            figures.append(Figure(name, p50, p99, rows))
    return figures


async def database_figures(database_url: str, samples: int, only: tuple[str, ...] = ()) -> list[Figure]:
    """The list's page statement alone (what `repository.alerts_page` sends), timed by PostgreSQL itself:
    `EXPLAIN ANALYZE` planning + execution time, p50 and p99 of `samples` runs. Separates the database's part from
    the HTTP and JSON work the end-to-end figures include."""
    db = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        bodies = {row["region_code"]: row["id"] for row in await db.fetch(
            "SELECT id, region_code FROM alerts.bodies WHERE region_code IN ($1, $2)", COUNTY, CITY)}
        now = datetime.now(UTC)
        cases = [
            ("page, admin", repository.AlertQuery()),
            ("page, county body", repository.AlertQuery(visible_to=bodies[COUNTY])),
            ("page, city body", repository.AlertQuery(visible_to=bodies[CITY])),
            ("page, admin, open red", repository.AlertQuery(state="open", level="red")),
            ("page, county body, open red", repository.AlertQuery(visible_to=bodies[COUNTY], state="open",
                                                                  level="red")),
            ("page, admin, kind", repository.AlertQuery(kind="dispute")),
            ("page, admin, city", repository.AlertQuery(region_prefix=CITY[:4])),
            ("page, admin, county", repository.AlertQuery(region_prefix=COUNTY)),
            ("page, admin, q=name", repository.AlertQuery(q="港城物流0004702")),
            ("page, admin, q=code part", repository.AlertQuery(q="00000470")),
            ("page, admin, q=common word", repository.AlertQuery(q="物流")),
            ("page, admin, one month", repository.AlertQuery(since=now - timedelta(days=230),
                                                             until=now - timedelta(days=200))),
            ("page, admin, changed_since", repository.AlertQuery(changed_since=now - timedelta(minutes=5))),
        ]
        figures = []
        for name, query in cases:
            if not selected(name, only):
                continue
            compiled = repository.alerts_page_statement(query, after=None, limit=51).compile(
                dialect=asyncpg_dialect())  # type: ignore[no-untyped-call]
            params = compiled.construct_params()
            values = [params[key] for key in compiled.positiontup or ()]
            durations = []
            for _ in range(samples + 2):
                plan = json.loads(await db.fetchval(f"EXPLAIN (ANALYZE, FORMAT JSON) {compiled.string}", *values))
                durations.append(plan[0]["Planning Time"] + plan[0]["Execution Time"])
            rows = int(plan[0]["Plan"].get("Actual Rows", 0))
            figures.append(Figure(name, percentile(durations[2:], 50), percentile(durations[2:], 99), rows))
        return figures
    finally:
        await db.close()


@dataclass
class Result:
    alerts: int
    figures: list[Figure]
    fill_seconds: float
    load: str
    database: list[Figure]


def run(infra: Infra, *, stages: tuple[int, ...] = STAGES, samples: int = 30,
        only: tuple[str, ...] = ()) -> list[Result]:
    results: list[Result] = []
    with stack(infra, ("alerts",)) as running:
        progress(f"seed: {SEED_EVENTS} real report.assessed events through the alerts consumer ({load_average()})")
        asyncio.run(publish_seed(running.env, seed_events(SEED_EVENTS)))
        tokens = create_bodies(running)

        async def stage_fill(start: int, end: int) -> float:
            db = await asyncpg.connect(asyncpg_dsn(running.env["DATABASE_URL"]))
            try:
                seeds = await prepare(db)
                return await fill(db, seeds, start, end)
            finally:
                await db.close()

        filled = 0
        for size in stages:
            progress(f"filling to {size:,} alerts and {size:,} assessed reports ({load_average()})")
            seconds = asyncio.run(stage_fill(filled, size))
            filled = size
            progress(f"measuring at {size:,} ({load_average()})")
            load = load_average()
            figures = measure(running, tokens, samples, only)
            database = asyncio.run(database_figures(running.env["DATABASE_URL"], samples, only))
            results.append(Result(size, figures, seconds, f"{load} → {load_average()}", database))
            report(results[-1], samples)
    return results


def report(result: Result, samples: int) -> None:
    say(f"\nlists at {result.alerts:,} alerts (+ seed) and {result.alerts:,} assessed reports — filled in "
        f"{result.fill_seconds:.0f} s; HTTP end to end, {samples} sequential requests each after 2 warm-ups; "
        f"{result.load}")
    say(f"  {'query':<42} {'p50':>9} {'p99':>9} {'rows':>6}")
    for figure in result.figures:
        say(f"  {figure.name:<42} {figure.p50_ms:>7.1f}ms {figure.p99_ms:>7.1f}ms {figure.rows:>6}")
    if result.database:
        say("  the page statement alone, in PostgreSQL (EXPLAIN ANALYZE planning + execution):")
    for figure in result.database:
        say(f"  {figure.name:<42} {figure.p50_ms:>7.2f}ms {figure.p99_ms:>7.2f}ms {figure.rows:>6}")


def verdicts(results: list[Result]) -> list[tuple[str, str, bool]]:
    """One line per query at the largest stage: p50 ≤ 50 ms."""
    if not results:
        return []
    last = results[-1]
    return [(f"{figure.name} ≤ {TARGET_MS:.0f} ms p50 at {last.alerts:,}{where}",
             f"p50 {figure.p50_ms:.2f} ms, p99 {figure.p99_ms:.2f} ms", figure.p50_ms <= TARGET_MS)
            for figures, where in ((last.figures, " (HTTP)"), (last.database, " (in PostgreSQL)"))
            for figure in figures]


def main() -> None:
    options = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    options.add_argument("--stages", default=",".join(str(s) for s in STAGES))
    options.add_argument("--samples", type=int, default=30)
    options.add_argument("--only", default="", help="comma-separated name prefixes of the queries to measure "
                                                      "(e.g. 'situation,watch list'); all when empty")
    args = options.parse_args()
    only = tuple(part.strip() for part in args.only.split(",") if part.strip())
    infra = harness_up()
    try:
        results = run(infra, stages=tuple(int(s) for s in args.stages.split(",")), samples=args.samples, only=only)
    finally:
        harness_down(infra)
    for target, figure, passed in verdicts(results):
        say(f"  {'PASS' if passed else 'FAIL':<6} {target:<70} {figure}")


if __name__ == "__main__":
    main()
