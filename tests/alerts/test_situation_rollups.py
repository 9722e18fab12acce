"""The rollups behind the situation counts and the watch list, on real PostgreSQL: the counts of `GET /v1/situation`
equal a brute-force count over the raw assessed reports for random periods (edges mid-day and mid-week), a
redelivered report is counted once, a body sees its region only, the watch list pages exactly what grouping the raw
blue reports gives, and the migration's backfill builds the same rollups as the trigger."""

from __future__ import annotations

import importlib.util
import itertools
import json
import random
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from services.alerts import repository
from shared import regions
from tests.alerts.conftest import ADMIN, AlertsWorld, make_assessed

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

ZONE = ZoneInfo("Asia/Shanghai")
LEVELS = ("red", "orange", "yellow", "blue", "none")
KINDS = ("arrears", "dispute", "stability")
INDUSTRIES = "ACEFGHIK"
# Counties of three cities (Nanjing, Xuzhou, Suzhou), several per city.
COUNTIES = [county.code for city in ("320100", "320300", "320500") for county in regions.counties_of(city)[:4]]
# The reports of this module lie in 2025 (the random periods) and in the last 90 days (the watch list).
YEAR_START = datetime(2025, 1, 1, tzinfo=ZONE)

INSERT = text("""
INSERT INTO alerts.assessed_reports (
    report_id, credit_code, enterprise_name, industry, kind, region_code, city_code, level, score, rubric_version,
    occurred_at, accepted_at, assessed_at, workers_involved, migrant_workers_involved, details, reasons)
SELECT r->>'report_id', r->>'credit_code', r->>'enterprise_name', r->>'industry', r->>'kind', r->>'region_code',
       substr(r->>'region_code', 1, 4) || '00', r->>'level', (r->>'score')::int, 'task7-v1',
       (r->>'occurred_at')::timestamptz, now(), now(), 10, 0, '{}'::jsonb, '[]'::jsonb
FROM jsonb_array_elements(CAST(:rows AS jsonb)) AS r
ON CONFLICT (report_id) DO NOTHING
""")


def report_row(rng: random.Random, occurred_at: datetime, **overrides: Any) -> dict[str, Any]:
    return {"report_id": str(uuid.uuid4()), "credit_code": f"91320000{rng.randrange(10**9):09d}X",
            "enterprise_name": f"测试企业{rng.randrange(1000)}有限公司", "industry": rng.choice(INDUSTRIES),
            "kind": rng.choice(KINDS), "region_code": rng.choice(COUNTIES), "level": rng.choice(LEVELS),
            "score": rng.randrange(100), "occurred_at": occurred_at.isoformat(), **overrides}


async def insert(alerts: AlertsWorld, rows: list[dict[str, Any]]) -> int:
    """One INSERT statement of `rows` (as a set-based consumer would send): how many were really inserted."""
    async with alerts.db.begin() as connection:
        return (await connection.execute(INSERT, {"rows": json.dumps(rows)})).rowcount


async def raw_reports(alerts: AlertsWorld) -> list[Any]:
    return await alerts.rows("SELECT region_code, industry, level, occurred_at FROM alerts.assessed_reports")


def brute_force(rows: list[Any], scope: str, since: datetime, until: datetime) -> dict[str, Counter[tuple[str, str]]]:
    """Counts by (county, level), (city, level), (week, level) and (industry, level), straight from the raw rows."""
    counts: dict[str, Counter[tuple[str, str]]] = {"county": Counter(), "city": Counter(), "week": Counter(),
                                                   "industry": Counter()}
    for region, industry, level, occurred_at in rows:
        if not (since <= occurred_at < until and regions.covers(scope, region)):
            continue
        day = occurred_at.astimezone(ZONE).date()
        counts["county"][region, level] += 1
        counts["city"][region[:4] + "00", level] += 1
        counts["week"][(day - timedelta(days=day.weekday())).isoformat(), level] += 1
        counts["industry"][industry, level] += 1
    return counts


def answered(situation: dict[str, Any]) -> dict[str, Counter[tuple[str, str]]]:
    counts: dict[str, Counter[tuple[str, str]]] = {"county": Counter(), "city": Counter(), "week": Counter(),
                                                   "industry": Counter()}
    for key, items, field in (("county", "counties", "region_code"), ("city", "cities", "region_code"),
                              ("week", "weekly", "week_start"), ("industry", "industries", "industry")):
        for item in situation[items]:
            for level, count in item["reports"].items():
                if count:
                    counts[key][item[field], level] += count
    return counts


async def situation(alerts: AlertsWorld, auth: str = ADMIN["Authorization"], **params: Any) -> dict[str, Any]:
    response = await alerts.client.get("/v1/situation", params=params, headers={"Authorization": auth})
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def random_instant(rng: random.Random) -> datetime:
    """An instant of 2025, to the second, often near midnight or a Monday (Shanghai) to test the edges."""
    moment = YEAR_START + timedelta(seconds=rng.randrange(365 * 86400))
    if rng.random() < 0.3:
        moment = moment.replace(hour=rng.choice((0, 23)), minute=rng.choice((0, 59)), second=rng.choice((0, 59)))
    return moment.astimezone(UTC)


async def test_period_parts_cover_the_period_exactly() -> None:
    rng = random.Random(11)
    for _ in range(500):
        since, until = sorted((random_instant(rng), random_instant(rng)))
        if since == until:
            continue
        parts = repository.period_parts(since, until)
        spans = [(datetime.combine(first, datetime.min.time(), ZONE), datetime.combine(end, datetime.min.time(), ZONE))
                 for _, first, end in parts.rollups] + list(parts.raw)
        spans.sort()
        assert spans[0][0] == since
        assert spans[-1][1] == until
        assert all(left[1] == right[0] for left, right in itertools.pairwise(spans))
        for grain, first, end in parts.rollups:
            if grain == "w":
                assert (first.weekday(), end.weekday()) == (0, 0)
        assert sum(1 for grain, *_ in parts.rollups if grain == "d") <= 2
        assert all(end - start < timedelta(days=1) for start, end in parts.raw)


async def test_counts_equal_a_brute_force_count_for_random_periods(alerts: AlertsWorld) -> None:
    rng = random.Random(7)
    rows = [report_row(rng, random_instant(rng)) for _ in range(3000)]
    # Several INSERT statements of various sizes, as consumers would send them.
    for start in range(0, len(rows), 700):
        assert await insert(alerts, rows[start:start + 700]) == len(rows[start:start + 700])
    raw = await raw_reports(alerts)
    scopes = [regions.JIANGSU, "320100", "320500", COUNTIES[0], COUNTIES[5]]
    periods = [(YEAR_START.astimezone(UTC), (YEAR_START + timedelta(days=365)).astimezone(UTC))]
    for _ in range(12):
        since, until = sorted((random_instant(rng), random_instant(rng)))
        periods.append((since, until))
    # Short ones: within a day, across one midnight, under two weeks.
    start = random_instant(rng)
    periods += [(start, start + timedelta(hours=5)), (start, start + timedelta(hours=30)),
                (start, start + timedelta(days=9, hours=3))]
    for since, until in periods:
        for scope in scopes:
            answer = await situation(alerts, region_code=scope, since=since.isoformat(), until=until.isoformat())
            expected = brute_force(raw, scope, since, until)
            got = answered(answer)
            assert got["county"] == expected["county"], (scope, since, until)
            # cities listed: those of the scope (a county's city shows the county's counts)
            assert got["city"] == expected["city"], (scope, since, until)
            assert got["week"] == expected["week"], (scope, since, until)
            assert got["industry"] == expected["industry"], (scope, since, until)


async def test_a_redelivered_report_is_counted_once(alerts: AlertsWorld) -> None:
    rng = random.Random(3)
    moment = datetime(2025, 6, 4, 10, tzinfo=ZONE)
    since, until = moment - timedelta(hours=1), moment + timedelta(hours=1)
    first = report_row(rng, moment, region_code="320106", level="red", industry="C")
    again = report_row(rng, moment, region_code="320106", level="red", industry="C")
    midnight = moment.replace(hour=0)
    day = {"since": midnight.isoformat(), "until": (midnight + timedelta(days=1)).isoformat()}
    before = await situation(alerts, region_code="320106", since=since.isoformat(), until=until.isoformat())
    day_before = await situation(alerts, region_code="320106", **day)  # a whole day: the daily rollup
    assert await insert(alerts, [first]) == 1
    # the same report again, in one statement with a new one: ON CONFLICT DO NOTHING inserts only the new one
    assert await insert(alerts, [first, again]) == 1
    assert await insert(alerts, [first]) == 0
    after = await situation(alerts, region_code="320106", since=since.isoformat(), until=until.isoformat())
    (county_before,) = before["counties"]
    (county_after,) = after["counties"]
    assert county_after["reports"]["red"] == county_before["reports"]["red"] + 2
    day_after = await situation(alerts, region_code="320106", **day)
    assert day_after["counties"][0]["reports"]["red"] == day_before["counties"][0]["reports"]["red"] + 2
    assert await alerts.scalar(
        "SELECT n_red FROM alerts.report_counts WHERE area = '320106' AND grain = 'd' AND period = :d",
        d=moment.date()) == day_after["counties"][0]["reports"]["red"]

    # through the consumer: the same report in two events (a replay upstream) is stored and counted once
    event = make_assessed(region_code="320106", enterprise={"industry": "C"},
                          occurred_at=(moment + timedelta(minutes=5)).isoformat())
    replay = event.model_copy(update={"event_id": uuid.uuid4()})
    await alerts.publish(event)
    await alerts.processed(event)
    await alerts.publish(replay)
    await alerts.processed(replay)
    level = event.level.value
    final = await situation(alerts, region_code="320106", since=since.isoformat(), until=until.isoformat())
    assert final["counties"][0]["reports"][level] == county_after["reports"][level] + 1


async def test_a_body_sees_its_region_only(alerts: AlertsWorld) -> None:
    raw = await raw_reports(alerts)
    county = await alerts.body(region_code=COUNTIES[1])
    city = await alerts.body(level="city", region_code="320300")
    since, until = datetime(2025, 2, 3, 15, 30, tzinfo=ZONE), datetime(2025, 11, 20, 4, tzinfo=ZONE)
    params = {"since": since.isoformat(), "until": until.isoformat()}
    own = await situation(alerts, county["auth"], **params)
    assert own["region_code"] == COUNTIES[1]
    assert [c["region_code"] for c in own["counties"]] == [COUNTIES[1]]
    assert answered(own)["industry"] == brute_force(raw, COUNTIES[1], since, until)["industry"]
    assert answered(own)["city"] == brute_force(raw, COUNTIES[1], since, until)["city"]
    theirs = await situation(alerts, city["auth"], **params)
    assert answered(theirs) == brute_force(raw, "320300", since, until)
    assert {c["region_code"][:4] for c in theirs["counties"]} == {"3203"}
    for auth, region in ((county["auth"], "320300"), (county["auth"], COUNTIES[5]), (city["auth"], "320100"),
                         (city["auth"], regions.JIANGSU)):
        response = await alerts.client.get("/v1/situation", params={**params, "region_code": region},
                                           headers={"Authorization": auth})
        assert response.status_code == 403, (region, response.text)


async def watch_pages(alerts: AlertsWorld, auth: str, limit: int, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": limit, **({"cursor": cursor} if cursor else {})}
        response = await alerts.client.get("/v1/watchlist", params=query, headers={"Authorization": auth})
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= limit
        items += page["items"]
        cursor = page.get("next_cursor")
        if cursor is None:
            return items


def expected_watch_list(rows: list[Any], scope: str | None, since: datetime) -> list[tuple[str, str, int, str, str]]:
    """(credit code, region of the latest, count, latest time, kinds) of the blue reports since `since` in the
    scope, newest first then by credit code descending: what grouping the raw rows gives."""
    by_code: dict[str, list[Any]] = {}
    for row in rows:
        if row.occurred_at >= since and (scope is None or regions.covers(scope, row.region_code)):
            by_code.setdefault(row.credit_code, []).append(row)
    result = []
    for code, reports in by_code.items():
        latest = max(r.occurred_at for r in reports)
        regions_of_latest = {r.region_code for r in reports if r.occurred_at == latest}
        result.append((code, "|".join(sorted(regions_of_latest)), len(reports), latest.astimezone(UTC).isoformat(),
                       ",".join(sorted({r.kind for r in reports}))))
    result.sort(key=lambda item: (item[3], item[0]), reverse=True)
    return result


async def test_the_watch_list_pages_exactly_the_grouped_blue_reports(alerts: AlertsWorld) -> None:
    rng = random.Random(5)
    now = datetime.now(UTC).replace(microsecond=0)
    codes = [f"91329999{n:09d}X" for n in range(40)]
    rows = []
    for _ in range(400):
        code = rng.choice(codes)
        # same second for several reports: ties on the time are broken by the credit code; half a day off the
        # whole days, so that no report is near the start of a window of whole days
        occurred = now - timedelta(days=rng.randrange(120), hours=12, seconds=rng.choice((0, 0, 3600, 7200)))
        rows.append(report_row(rng, occurred, credit_code=code, level=rng.choice(("blue", "blue", "yellow")),
                               region_code=rng.choice(COUNTIES[:6])))
    # late arrivals: an older report of an enterprise after its newer ones does not replace its latest
    rng.shuffle(rows)
    for start in range(0, len(rows), 90):
        await insert(alerts, rows[start:start + 90])
    blue = await alerts.rows(
        "SELECT credit_code, region_code, kind, occurred_at FROM alerts.assessed_reports "
        "WHERE level = 'blue' AND credit_code LIKE '91329999%'")
    county = await alerts.body(region_code=COUNTIES[0])
    city = await alerts.body(level="city", region_code="320100")
    for auth, params, scope in ((ADMIN["Authorization"], {}, None),
                                (ADMIN["Authorization"], {"days": 30}, None),
                                (ADMIN["Authorization"], {"region_code": "320300"}, "320300"),
                                (city["auth"], {}, "320100"),
                                (county["auth"], {"days": 60}, COUNTIES[0])):
        days = int(params.get("days", 90))
        for limit in (1, 7, 200):
            items = [item for item in await watch_pages(alerts, auth, limit, **params)
                     if item["credit_code"].startswith("91329999")]
            got = [(item["credit_code"], item["region_code"], item["reports"],
                    datetime.fromisoformat(item["latest_occurred_at"]).astimezone(UTC).isoformat(),
                    ",".join(item["kinds"]))
                   for item in items]
            expected = expected_watch_list(blue, scope, datetime.now(UTC) - timedelta(days=days))
            assert [(code, count, latest, kinds) for code, _, count, latest, kinds in got] == [
                (code, count, latest, kinds) for code, _, count, latest, kinds in expected], (params, limit)
            for (_, region, *_rest), (_, regions_of_latest, *_more) in zip(got, expected, strict=True):
                assert region in regions_of_latest.split("|")


async def test_the_backfill_builds_the_same_rollups_as_the_trigger(alerts: AlertsWorld) -> None:
    path = next((Path(__file__).parents[2] / "services" / "alerts" / "migrations" / "versions").glob(
        "*situation01*.py"))
    spec = importlib.util.spec_from_file_location("situation01", path)
    assert spec is not None
    assert spec.loader is not None
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    tables = ("report_counts", "report_counts_by_industry", "watched_enterprises")
    async with alerts.db.begin() as connection:
        kept = {t: sorted(map(tuple, (await connection.execute(text(f"SELECT * FROM alerts.{t}"))).all()))
                for t in tables}
        assert all(kept.values())
        await connection.execute(text("LOCK TABLE alerts.assessed_reports IN SHARE ROW EXCLUSIVE MODE"))
        await connection.execute(text(f"TRUNCATE {', '.join('alerts.' + t for t in tables)}"))
        for statement in migration.rollup_statements("alerts.assessed_reports"):
            await connection.execute(text(statement))
        rebuilt = {t: sorted(map(tuple, (await connection.execute(text(f"SELECT * FROM alerts.{t}"))).all()))
                   for t in tables}
    assert rebuilt == kept
