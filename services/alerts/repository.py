"""Every query of the alerts service: bodies, alerts, notifications, escalations, deliveries, the consumed-event
ledger, the outbox and screening coverage. Functions only flush; the caller's transaction commits."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import (
    JSON,
    ColumnElement,
    Select,
    Table,
    Text,
    and_,
    bindparam,
    cast,
    exists,
    func,
    or_,
    select,
    text,
    tuple_,
    union_all,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on, insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased, defer

from services.alerts.models import (
    ROLLUP_LEVELS,
    ROLLUP_TIME_ZONE,
    Acknowledgement,
    Alert,
    AssessedReport,
    Body,
    Delivery,
    DeliveryState,
    Escalation,
    InboxEntry,
    IndustryReportCountRollup,
    Notification,
    OutboxMessage,
    ProcessedEvent,
    ReportCountRollup,
    ScreeningAnswer,
    ScreeningCoverage,
    WatchedEnterpriseRollup,
    alert_search_text,
)
from shared import regions
from shared.events import AlertState

Row = TypeVar("Row", Notification, Escalation, Delivery)

# --- bodies --------------------------------------------------------------------------------------------------------


async def active_body_id_for_token(session: AsyncSession, token_hash: str) -> str | None:
    """The active body signing in with the token of this hash, or None."""
    body_id: str | None = await session.scalar(
        select(Body.id).where(Body.token_hash == token_hash, Body.active.is_(True))
    )
    return body_id


async def get_body(session: AsyncSession, body_id: str, *, for_update: bool = False) -> Body | None:
    return await session.get(Body, body_id, with_for_update=for_update)


async def list_bodies(session: AsyncSession, *, region_prefix: str | None, include_inactive: bool) -> Sequence[Body]:
    """Bodies whose region code starts with `region_prefix`, by region, kind, level and name."""
    statement = select(Body).order_by(Body.region_code, Body.kind, Body.level, Body.name)
    if region_prefix:
        statement = statement.where(Body.region_code.startswith(region_prefix))
    if not include_inactive:
        statement = statement.where(Body.active.is_(True))
    return (await session.scalars(statement)).all()


async def active_bodies_in_province(session: AsyncSession, region_code: str) -> dict[str, Body]:
    """The active bodies of the province of `region_code` (every body that could cover it), by id."""
    rows = await session.scalars(
        select(Body).where(Body.active.is_(True), Body.region_code.startswith(region_code[:2]))
    )
    return {body.id: body for body in rows}


# --- alerts --------------------------------------------------------------------------------------------------------


async def mark_processed(session: AsyncSession, event_id: str, now: datetime) -> bool:
    """Record a consumed event; False when it was recorded before (a redelivery)."""
    first_time = await session.scalar(
        insert(ProcessedEvent).values(event_id=event_id, processed_at=now)
        .on_conflict_do_nothing().returning(ProcessedEvent.event_id)
    )
    return first_time is not None


async def get_alert(session: AsyncSession, alert_id: str, *, for_update: bool = False) -> Alert | None:
    return await session.get(Alert, alert_id, with_for_update=for_update)


async def due_alerts_for_update(session: AsyncSession, now: datetime, limit: int) -> Sequence[Alert]:
    """Open alerts past their deadline that escalation has not given up on, oldest deadline first; rows other
    replicas hold are skipped."""
    return (await session.scalars(
        select(Alert).where(Alert.state == AlertState.open.value, Alert.escalation_exhausted.is_(False),
                            Alert.ack_deadline <= now)
        .order_by(Alert.ack_deadline).limit(limit).with_for_update(skip_locked=True)
    )).all()


async def was_notified(session: AsyncSession, alert_id: str, body_id: str) -> bool:
    found = await session.scalar(
        select(Notification.id).where(Notification.alert_id == alert_id, Notification.body_id == body_id).limit(1)
    )
    return found is not None


async def open_alerts_by_level(session: AsyncSession, *, overdue_at: datetime | None = None) -> dict[str, int]:
    """How many alerts are open (and, with `overdue_at`, past their deadline then), by level."""
    statement = select(Alert.level, func.count()).where(Alert.state == AlertState.open.value)
    if overdue_at is not None:
        statement = statement.where(Alert.ack_deadline < overdue_at)
    rows = (await session.execute(statement.group_by(Alert.level))).all()
    return {str(level): int(count) for level, count in rows}


# --- notifications, escalations, deliveries ------------------------------------------------------------------------


def add(session: AsyncSession, *rows: Any) -> None:
    """Stage new rows (alerts, notifications, escalations, deliveries, outbox messages)."""
    session.add_all(rows)


async def flush(session: AsyncSession) -> None:
    await session.flush()


async def notifications_of(session: AsyncSession, alert_ids: Sequence[str]) -> dict[str, list[Notification]]:
    """The notifications of each alert, in the order they were made: one query for the whole page."""
    rows = await session.scalars(
        select(Notification).where(Notification.alert_id.in_(alert_ids)).order_by(Notification.id)
    )
    return _by_alert(rows)


async def escalations_of(session: AsyncSession, alert_ids: Sequence[str]) -> dict[str, list[Escalation]]:
    rows = await session.scalars(
        select(Escalation).where(Escalation.alert_id.in_(alert_ids)).order_by(Escalation.id)
    )
    return _by_alert(rows)


async def deliveries_of(session: AsyncSession, alert_ids: Sequence[str]) -> dict[str, list[Delivery]]:
    rows = await session.scalars(
        select(Delivery).where(Delivery.alert_id.in_(alert_ids)).order_by(Delivery.created_at, Delivery.id)
    )
    return _by_alert(rows)


def _by_alert(rows: Iterable[Row]) -> dict[str, list[Row]]:
    grouped: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        if row.alert_id is not None:  # a delivery of a notice belongs to no alert (never selected by alert id)
            grouped[row.alert_id].append(row)
    return grouped


async def claim_due_deliveries(session: AsyncSession, now: datetime, lease_until: datetime,
                               limit: int) -> list[Delivery]:
    """Lease up to `limit` due pending deliveries (their next attempt moves to `lease_until`); rows other replicas
    hold are skipped."""
    due = (
        select(Delivery.id).where(Delivery.state == DeliveryState.pending.value, Delivery.next_attempt_at <= now)
        .order_by(Delivery.next_attempt_at).limit(limit).with_for_update(skip_locked=True)
    )
    rows = await session.scalars(
        update(Delivery).where(Delivery.id.in_(due.scalar_subquery())).values(next_attempt_at=lease_until)
        .returning(Delivery)
    )
    return list(rows.all())


async def pending_deliveries(session: AsyncSession) -> int:
    count = await session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.state == DeliveryState.pending.value)
    )
    return count or 0


# --- receipts (acknowledgements) -----------------------------------------------------------------------------------


async def notified_body(session: AsyncSession, alert_id: str, body_id: str) -> Body | None:
    """The body `body_id` if it was notified of the alert (its kind decides what its receipt does), else None."""
    body: Body | None = await session.scalar(
        select(Body).where(Body.id == body_id, select(Notification.id).where(
            Notification.alert_id == alert_id, Notification.body_id == body_id).exists())
    )
    return body


async def confirmed_bodies(session: AsyncSession, alert_id: str, level: str) -> frozenset[str]:
    """The bodies that confirmed receipt of the alert at `level`."""
    rows = await session.scalars(
        select(Acknowledgement.body_id).where(Acknowledgement.alert_id == alert_id, Acknowledgement.level == level)
    )
    return frozenset(rows)


async def acknowledgement(session: AsyncSession, alert_id: str, body_id: str, level: str) -> Acknowledgement | None:
    """The body's receipt of the alert at `level`, if it confirmed."""
    found: Acknowledgement | None = await session.scalar(
        select(Acknowledgement).where(Acknowledgement.alert_id == alert_id, Acknowledgement.body_id == body_id,
                                      Acknowledgement.level == level)
    )
    return found


async def notified_of(session: AsyncSession, alert_ids: Sequence[str]) -> dict[str, list[tuple[Notification, str]]]:
    """The notifications of each alert with the body's name, in the order they were made: one query for a page."""
    rows = await session.execute(
        select(Notification, Body.name).join(Body, Body.id == Notification.body_id)
        .where(Notification.alert_id.in_(alert_ids)).order_by(Notification.id)
    )
    return _pairs_by_alert((notification, str(name)) for notification, name in rows)


async def acknowledgements_of(session: AsyncSession,
                              alert_ids: Sequence[str]) -> dict[str, list[tuple[Acknowledgement, str]]]:
    """The receipts of each alert with the body's name, oldest first: one query for a page."""
    rows = await session.execute(
        select(Acknowledgement, Body.name).join(Body, Body.id == Acknowledgement.body_id)
        .where(Acknowledgement.alert_id.in_(alert_ids)).order_by(Acknowledgement.at, Acknowledgement.id)
    )
    return _pairs_by_alert((acknowledgement, str(name)) for acknowledgement, name in rows)


Named = TypeVar("Named", Notification, Acknowledgement)


def _pairs_by_alert(rows: Iterable[tuple[Named, str]]) -> dict[str, list[tuple[Named, str]]]:
    grouped: dict[str, list[tuple[Named, str]]] = defaultdict(list)
    for row, name in rows:
        grouped[row.alert_id].append((row, name))
    return grouped


async def assessed_reports(session: AsyncSession, report_ids: Sequence[str]) -> dict[str, AssessedReport]:
    """The stored assessed reports among `report_ids`, by id: one query for the alert detail."""
    rows = await session.scalars(select(AssessedReport).where(AssessedReport.report_id.in_(report_ids)))
    return {row.report_id: row for row in rows}


# --- assessed reports (inbox lists, situation, watch list) ---------------------------------------------------------


# --- inbox lists and export ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertQuery:
    """The filters of the inbox list and its export. `region_prefix` is `shared.regions.prefix_of` of a code:
    "32" a province, "3201" a city (covering its counties), "320102" a county."""

    visible_to: str | None = None
    level: str | None = None
    kind: str | None = None
    state: str | None = None
    region_prefix: str | None = None
    q: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    changed_since: datetime | None = None
    has_owner: bool | None = None


@dataclass(frozen=True)
class AlertKey:
    """A position in the list order (most severe first, then oldest first, then by id): the keyset cursor."""

    level_order: int
    opened_at: datetime
    alert_id: str


def _region_filter(region_code: Any, city_code: Any, prefix: str) -> ColumnElement[bool]:
    """A county is one code, a city its generated city code (both equalities in front of an index); a province a
    range of codes."""
    if len(prefix) == 6:
        return region_code == prefix  # type: ignore[no-any-return]
    if len(prefix) == 4:
        return city_code == prefix + "00"  # type: ignore[no-any-return]
    upper = str(int(prefix) + 1).zfill(len(prefix))
    return and_(region_code >= prefix, region_code < upper)


LEVEL_ORDER = {"red": 0, "orange": 1, "yellow": 2, "blue": 3, "none": 4}
"""The generated `alerts.level_order` of each level (models.LEVEL_ORDER_SQL): a level filter is an equality on it,
in front of the list indexes."""


def _alerts_where(statement: Select[Any], query: AlertQuery) -> Select[Any]:
    if query.level is not None:
        statement = statement.where(Alert.level_order == LEVEL_ORDER[query.level])
    if query.kind is not None:
        statement = statement.where(Alert.kind == query.kind)
    if query.state is not None:
        statement = statement.where(Alert.state == query.state)
    if query.region_prefix is not None:
        statement = statement.where(_region_filter(Alert.region_code, Alert.city_code, query.region_prefix))
    if query.q:
        # The bigram index narrows the rows; the exact substring test (case-insensitive) decides.
        needle = func.lower(query.q)
        statement = statement.where(
            alert_search_text().op("@>")(func.alerts.search_bigrams(query.q)),
            or_(func.strpos(func.lower(Alert.enterprise_name), needle) > 0,
                func.strpos(func.lower(Alert.credit_code), needle) > 0),
        )
    if query.since is not None:
        statement = statement.where(Alert.opened_at >= query.since)
    if query.until is not None:
        statement = statement.where(Alert.opened_at < query.until)
    if query.changed_since is not None:
        statement = statement.where(Alert.updated_at > query.changed_since)
    if query.has_owner is not None:
        statement = statement.where(owner_predicate(query.has_owner))
    return statement


async def alerts_page(session: AsyncSession, query: AlertQuery, *, after: AlertKey | None, limit: int,
                      without_documents: bool = False) -> Sequence[Alert]:
    """Up to `limit` alerts matching `query` after the position `after`, most severe first, then oldest first
    (one query). Admin's list walks the `ix_alerts_list*` indexes; a body's walks its `inbox_entries` in the same
    order (`ix_inbox_entries_*`), so neither sorts nor scans the archive. `without_documents` leaves the report and
    assessment JSON unloaded (the export does not show them; touching them then is an error)."""
    statement = alerts_page_statement(query, after=after, limit=limit)
    if without_documents:
        statement = statement.options(defer(Alert.report, raiseload=True), defer(Alert.assessment, raiseload=True))
    return (await session.scalars(statement)).all()


def alerts_page_statement(query: AlertQuery, *, after: AlertKey | None, limit: int) -> Select[Alert]:
    """The statement of `alerts_page` (the benchmark also times it on its own)."""
    if query.visible_to is None:
        order: tuple[Any, Any, Any] = (Alert.level_order, Alert.opened_at, Alert.id)
        statement = select(Alert)
    else:
        order = (InboxEntry.level_order, InboxEntry.opened_at, InboxEntry.alert_id)
        statement = (select(Alert).join(InboxEntry, InboxEntry.alert_id == Alert.id)
                     .where(InboxEntry.body_id == query.visible_to))
        if query.level is not None:
            statement = statement.where(InboxEntry.level_order == LEVEL_ORDER[query.level])
        if query.state is not None:
            statement = statement.where(InboxEntry.state == query.state)
    statement = _alerts_where(statement, query)
    if after is not None:
        statement = statement.where(tuple_(*order) > tuple_(after.level_order, after.opened_at, after.alert_id))
    return statement.order_by(*order).limit(limit)


# --- situation -----------------------------------------------------------------------------------------------------
# The counts come from the rollups the trigger `assessed_reports_rollup` keeps (models.ReportCountRollup and
# IndustryReportCountRollup): whole weeks from the weekly rows, whole days at the edges of the period from the daily
# rows, and only the partial days at its very edges from the raw rows. A year of the province is a few thousand
# rollup rows, not a year of reports.


SITUATION_TIME_ZONE = ROLLUP_TIME_ZONE
_ZONE = ZoneInfo(SITUATION_TIME_ZONE)


@dataclass(frozen=True)
class PeriodParts:
    """[since, until) cut into rollup pieces and raw pieces: `rollups` (grain, first period, end period) with
    'w' ranges of Mondays and 'd' ranges of days (end excluded), `raw` (start, end) instants of partial days."""

    rollups: tuple[tuple[str, date, date], ...]
    raw: tuple[tuple[datetime, datetime], ...]


def period_parts(since: datetime, until: datetime) -> PeriodParts:
    """Whole weeks (Monday to Monday, Asia/Shanghai) as weekly rows, the whole days before the first and after the
    last whole week as daily rows, the partial days at the two ends as raw rows: together exactly [since, until)."""
    local_since, local_until = since.astimezone(_ZONE), until.astimezone(_ZONE)
    first_day = local_since.date() if local_since.time() == time() else local_since.date() + timedelta(days=1)
    end_day = local_until.date()
    if first_day >= end_day:
        return PeriodParts(rollups=(), raw=((since, until),))
    day_start, day_end = _midnight(first_day), _midnight(end_day)
    raw = tuple(part for part in ((since, day_start), (day_end, until)) if part[0] < part[1])
    first_monday = first_day + timedelta(days=(7 - first_day.weekday()) % 7)
    end_monday = end_day - timedelta(days=end_day.weekday())
    if first_monday >= end_monday:
        return PeriodParts(rollups=(("d", first_day, end_day),), raw=raw)
    rollups = tuple(part for part in (("d", first_day, first_monday), ("w", first_monday, end_monday),
                                      ("d", end_monday, end_day)) if part[1] < part[2])
    return PeriodParts(rollups=rollups, raw=raw)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), _ZONE)


def week_of(day: date) -> date:
    """The Monday of `day`'s week."""
    return day - timedelta(days=day.weekday())


LevelTally = dict[str, int]


@dataclass
class SituationCounts:
    """Assessed reports of a period by level: per area asked (a county, city or province code: the reports within
    it and within the scope), and within the scope per week (its Monday) and per industry."""

    by_area: dict[str, LevelTally]
    by_week: dict[date, LevelTally]
    by_industry: dict[str, LevelTally]


def _tally(into: dict[Any, LevelTally], key: Any, level: str, count: int) -> None:
    bucket = into.setdefault(key, {})
    bucket[level] = bucket.get(level, 0) + count


def _pieces(table: type[ReportCountRollup] | type[IndustryReportCountRollup], keys: Sequence[Any],
            where: Sequence[ColumnElement[bool]], parts: PeriodParts) -> Any:
    """The rollup rows of the period (`keys` and the level columns), one index range per piece (a UNION ALL, so that
    each piece is an index scan)."""
    columns = [*keys, *(getattr(table, f"n_{level}") for level in ROLLUP_LEVELS)]
    return union_all(*(select(*columns).where(*where, table.grain == grain, table.period >= first,
                                              table.period < end)
                       for grain, first, end in parts.rollups)).subquery()


def _summed(rows: Any, *keys: str) -> Select[Any]:
    """The level columns of `rows` summed by `keys`."""
    return (select(*(rows.c[key] for key in keys), *(func.sum(rows.c[f"n_{level}"]) for level in ROLLUP_LEVELS))
            .group_by(*(rows.c[key] for key in keys)))


def _tally_levels(into: dict[Any, LevelTally], key: Any, counts: Sequence[Any]) -> None:
    for level, count in zip(ROLLUP_LEVELS, counts, strict=True):
        if count:
            _tally(into, key, level, int(count))


async def situation_report_counts(session: AsyncSession, *, scope: str, areas: Sequence[str], since: datetime,
                                  until: datetime) -> SituationCounts:
    """Assessed reports that occurred in [since, until) within `scope` (a province, city or county code), by level:
    per code of `areas` (each within the scope), per week and per industry. At most four queries, each reading a
    few thousand rows at most: the rollups by area, by week and by industry, and the raw rows of the partial days
    at the ends of the period."""
    parts = period_parts(since, until)
    counts = SituationCounts(by_area={}, by_week={}, by_industry={})
    # A few thousand rows: starting parallel workers costs more than it saves (the planner chose two for the
    # province's counts, which then took three to five times longer on a busy box). For this transaction only.
    await session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
    if parts.rollups:
        rollup, by_industry = ReportCountRollup, IndustryReportCountRollup
        area_rows = _pieces(rollup, (rollup.area,), (rollup.area.in_(areas),), parts)
        for area, *levels in (await session.execute(_summed(area_rows, "area"))).all():
            _tally_levels(counts.by_area, area, levels)
        week_rows = _pieces(rollup, (rollup.grain, rollup.period), (rollup.area == scope,), parts)
        for _grain, period, *levels in (await session.execute(_summed(week_rows, "grain", "period"))).all():
            _tally_levels(counts.by_week, week_of(period), levels)
        industry_rows = _pieces(by_industry, (by_industry.industry,), (by_industry.area == scope,), parts)
        for industry, *levels in (await session.execute(_summed(industry_rows, "industry"))).all():
            _tally_levels(counts.by_industry, industry, levels)
    if parts.raw:
        wanted = set(areas)
        for region, industry, week_at, level, count in await _raw_counts(session, scope, parts.raw):
            if level not in ROLLUP_LEVELS:
                continue
            for area in {region, region[:4] + "00", region[:2] + "0000"} & wanted:
                _tally(counts.by_area, area, level, count)
            _tally(counts.by_week, week_at, level, count)
            _tally(counts.by_industry, industry, level, count)
    return counts


async def _raw_counts(session: AsyncSession, scope: str, ranges: Sequence[tuple[datetime, datetime]],
                      ) -> list[tuple[str, str, date, str, int]]:
    """The assessed reports of the partial days, counted by (county, industry, week, level): index-only scans."""
    week = func.date_trunc("week", func.timezone(SITUATION_TIME_ZONE, AssessedReport.occurred_at))
    region = _region_filter(AssessedReport.region_code, AssessedReport.city_code, regions.prefix_of(scope))
    rows = union_all(*(select(AssessedReport.region_code, AssessedReport.industry, week.label("week"),
                              AssessedReport.level)
                       .where(region, AssessedReport.occurred_at >= start, AssessedReport.occurred_at < end)
                       for start, end in ranges)).subquery()
    statement = (select(rows.c.region_code, rows.c.industry, rows.c.week, rows.c.level, func.count())
                 .group_by(rows.c.region_code, rows.c.industry, rows.c.week, rows.c.level))
    return [(str(region_code), str(industry), week_at.date(), str(level), int(count))
            for region_code, industry, week_at, level, count in (await session.execute(statement)).all()]


@dataclass
class OpenAlertTallies:
    """Alerts not yet resolved, by current level: per county and per industry ("" when the report had none)."""

    by_county: dict[str, LevelTally]
    by_industry: dict[str, LevelTally]


async def unresolved_alert_counts(session: AsyncSession, *, region_prefix: str) -> OpenAlertTallies:
    """Alerts not yet resolved in the region, counted by (county, current level) and by (industry, current level):
    an index-only scan of `ix_alerts_unresolved_counts` with two grouping sets, so a few hundred rows come back
    however many alerts are open."""
    # A city as a range of county codes, not `city_code =`: the range is an index condition on the partial index,
    # whereas the city equality made the planner read the city's resolved alerts too (58 ms for Nanjing at 10^6).
    region = (Alert.region_code == region_prefix if len(region_prefix) == 6
              else and_(Alert.region_code >= region_prefix,
                        Alert.region_code < str(int(region_prefix) + 1).zfill(len(region_prefix))))
    statement = (
        select(Alert.region_code, Alert.industry, func.grouping(Alert.region_code), Alert.level, func.count())
        .where(Alert.state != AlertState.resolved.value, region)
        .group_by(func.grouping_sets(tuple_(Alert.region_code, Alert.level), tuple_(Alert.industry, Alert.level)))
    )
    tallies = OpenAlertTallies(by_county={}, by_industry={})
    for region, industry, by_industry, level, count in (await session.execute(statement)).all():
        if by_industry:
            _tally(tallies.by_industry, str(industry or ""), str(level), int(count))
        else:
            _tally(tallies.by_county, str(region), str(level), int(count))
    return tallies


# --- watch list ----------------------------------------------------------------------------------------------------
# A page walks `watched_enterprises` (the latest blue report of each enterprise in each county, kept by the trigger)
# newest first and stops after `limit` rows; then the page's enterprises alone get their counts and kinds from the
# blue reports (`ix_assessed_reports_blue_enterprise`).


@dataclass(frozen=True)
class WatchedEnterprise:
    credit_code: str
    enterprise_name: str
    region_code: str
    count: int
    latest_occurred_at: datetime
    latest_score: int
    kinds: list[str]


async def watchlist_page(session: AsyncSession, *, region_prefix: str | None, since: datetime,
                         after: tuple[datetime, str] | None, limit: int) -> list[WatchedEnterprise]:
    """Enterprises with blue reports that occurred since `since` in the region, the most recent first (then by
    credit code, descending): name, region and score of the latest, how many, and their kinds. Two queries: the
    page of enterprises, then the counts and kinds of those."""
    watched, newer = WatchedEnterpriseRollup, aliased(WatchedEnterpriseRollup)
    statement = (select(watched).where(watched.latest_occurred_at >= since)
                 .order_by(watched.latest_occurred_at.desc(), watched.credit_code.desc()).limit(limit))
    if region_prefix is not None:
        statement = statement.where(_region_filter(watched.region_code, watched.city_code, region_prefix))
    if region_prefix is None or len(region_prefix) < 6:
        # An enterprise with blue reports in several counties of the region: only its row with the latest report.
        later = select(newer.credit_code).where(
            newer.credit_code == watched.credit_code,
            tuple_(newer.latest_occurred_at, newer.region_code) > tuple_(watched.latest_occurred_at,
                                                                          watched.region_code))
        if region_prefix is not None:
            later = later.where(_region_filter(newer.region_code, newer.city_code, region_prefix))
        statement = statement.where(~exists(later))
    if after is not None:
        statement = statement.where(tuple_(watched.latest_occurred_at, watched.credit_code) < tuple_(*after))
    page = (await session.scalars(statement)).all()
    if not page:
        return []
    blue = (select(AssessedReport.credit_code, func.count(), func.array_agg(AssessedReport.kind.distinct()))
            .where(AssessedReport.level == "blue", AssessedReport.credit_code.in_([row.credit_code for row in page]),
                   AssessedReport.occurred_at >= since)
            .group_by(AssessedReport.credit_code))
    if region_prefix is not None:
        blue = blue.where(_region_filter(AssessedReport.region_code, AssessedReport.city_code, region_prefix))
    tallies = {code: (int(count), sorted(kinds)) for code, count, kinds in (await session.execute(blue)).all()}
    return [WatchedEnterprise(credit_code=row.credit_code, enterprise_name=row.enterprise_name,
                              region_code=row.region_code, count=tallies.get(row.credit_code, (0, []))[0],
                              latest_occurred_at=row.latest_occurred_at, latest_score=row.score,
                              kinds=tallies.get(row.credit_code, (0, []))[1])
            for row in page]


# --- case ownership (包案) -------------------------------------------------------------------------------------------


def owner_predicate(has_owner: bool) -> ColumnElement[bool]:
    """The `has_owner` filter of alert lists: alerts with (True) or without (False) a responsible leader."""
    return Alert.owner.is_not(None) if has_owner else Alert.owner.is_(None)


async def unowned_alerts_by_level(session: AsyncSession) -> dict[str, int]:
    """How many open or acknowledged alerts have no responsible leader, by level."""
    rows = (await session.execute(
        select(Alert.level, func.count())
        .where(Alert.state.in_([AlertState.open.value, AlertState.acknowledged.value]), owner_predicate(False))
        .group_by(Alert.level)
    )).all()
    return {str(level): int(count) for level, count in rows}


async def body_names(session: AsyncSession, body_ids: Iterable[str]) -> dict[str, str]:
    """The names of these bodies, by id (inactive ones included: history keeps naming them)."""
    ids = sorted(set(body_ids))
    if not ids:
        return {}
    rows = (await session.execute(select(Body.id, Body.name).where(Body.id.in_(ids)))).all()
    return {str(body_id): str(name) for body_id, name in rows}


# --- screening coverage (常态化排查) --------------------------------------------------------------------------------


async def ensure_coverage(session: AsyncSession, *, round_id: str, county: str, round_name: str,
                          round_region_code: str, opens_at: datetime, due_at: datetime, now: datetime) -> None:
    """The (round, county) row, created from whichever of the round's events comes first."""
    await session.execute(
        insert(ScreeningCoverage).values(
            round_id=round_id, county=county, round_name=round_name, round_region_code=round_region_code,
            opens_at=opens_at, due_at=due_at, expected=0, units=[], updated_at=now,
        ).on_conflict_do_nothing(index_elements=["round_id", "county"])
    )


async def coverage_for_update(session: AsyncSession, round_id: str, county: str) -> ScreeningCoverage | None:
    row: ScreeningCoverage | None = await session.get(ScreeningCoverage, (round_id, county), with_for_update=True)
    return row


async def upsert_answer(session: AsyncSession, *, round_id: str, unit_id: str, county: str, unit_name: str,
                        status: str, report_count: int, revision: int, submitted_at: datetime) -> bool:
    """Store a unit's answer unless one of the same or a higher revision is stored; True when it was stored."""
    statement = insert(ScreeningAnswer).values(
        round_id=round_id, unit_id=unit_id, county=county, unit_name=unit_name, status=status,
        report_count=report_count, revision=revision, submitted_at=submitted_at,
    )
    stored = await session.scalar(statement.on_conflict_do_update(
        index_elements=["round_id", "unit_id"],
        set_={"status": statement.excluded.status, "report_count": statement.excluded.report_count,
              "revision": statement.excluded.revision, "submitted_at": statement.excluded.submitted_at,
              "unit_name": statement.excluded.unit_name},
        where=ScreeningAnswer.revision < statement.excluded.revision,
    ).returning(ScreeningAnswer.unit_id))
    return stored is not None


async def coverage_round_ids(session: AsyncSession, *, county_prefix: str, round_id: str | None,
                             limit: int) -> list[str]:
    """Up to `limit` rounds with a county under `county_prefix`, latest due date first."""
    statement = (
        select(ScreeningCoverage.round_id, func.max(ScreeningCoverage.due_at).label("due_at"))
        .where(ScreeningCoverage.county.startswith(county_prefix))
        .group_by(ScreeningCoverage.round_id)
        .order_by(func.max(ScreeningCoverage.due_at).desc(), ScreeningCoverage.round_id).limit(limit)
    )
    if round_id is not None:
        statement = statement.where(ScreeningCoverage.round_id == round_id)
    return [str(row.round_id) for row in (await session.execute(statement)).all()]


async def coverage_rows(session: AsyncSession, round_ids: Sequence[str],
                        county_prefix: str) -> Sequence[ScreeningCoverage]:
    """The counties under `county_prefix` of these rounds, by county."""
    if not round_ids:
        return []
    return (await session.scalars(
        select(ScreeningCoverage)
        .where(ScreeningCoverage.round_id.in_(round_ids), ScreeningCoverage.county.startswith(county_prefix))
        .order_by(ScreeningCoverage.round_id, ScreeningCoverage.county)
    )).all()


async def answers_of(session: AsyncSession, keys: Sequence[tuple[str, str]]) -> Sequence[ScreeningAnswer]:
    """The answers in force of these (round, county) pairs."""
    if not keys:
        return []
    return (await session.scalars(
        select(ScreeningAnswer).where(tuple_(ScreeningAnswer.round_id, ScreeningAnswer.county).in_(list(keys)))
    )).all()


async def open_round_coverage(session: AsyncSession, now: datetime) -> list[tuple[str, int, int]]:
    """(county, expected, answered) of every county of the rounds open at `now` that has not come due."""
    rows = (await session.execute(
        select(ScreeningCoverage.county, ScreeningCoverage.expected, func.count(ScreeningAnswer.unit_id))
        .outerjoin(ScreeningAnswer, (ScreeningAnswer.round_id == ScreeningCoverage.round_id)
                   & (ScreeningAnswer.county == ScreeningCoverage.county))
        .where(ScreeningCoverage.opens_at <= now, ScreeningCoverage.due_at > now,
               ScreeningCoverage.due_received_at.is_(None))
        .group_by(ScreeningCoverage.round_id, ScreeningCoverage.county, ScreeningCoverage.expected)
    )).all()
    return [(str(county), int(expected), int(count)) for county, expected, count in rows]
# --- sending deliveries continuously (speed: many results per transaction, wake-ups by NOTIFY) ---------------------

WAKE_CHANNEL = "alerts_work"
"""The PostgreSQL NOTIFY channel on which a commit that queued deliveries or outbox rows wakes every replica."""

_DELIVERIES: Table = Delivery.__table__  # type: ignore[assignment]  # a Table, typed as FromClause


async def bodies_by_id(session: AsyncSession, body_ids: Iterable[str]) -> dict[str, Body]:
    """The bodies of these ids (active or not), by id: one query for a whole claim."""
    ids = sorted(set(body_ids))
    if not ids:
        return {}
    return {body.id: body for body in await session.scalars(select(Body).where(Body.id.in_(ids)))}


_ATTEMPT_COLUMNS = ("id", "attempts", "last_attempt_at", "last_status", "last_error", "state", "next_attempt_at",
                    "delivered_at")


@lru_cache(maxsize=1)
def _attempts_recorded() -> Any:
    """One statement for a batch of finished attempts, whatever they are (a fixed text, prepared once): the
    delivered ones (`d_*` arrays), the others (`f_*`), the deliveries put back unsent (`deferred_ids`, due at
    `deferred_until`), and the alerts delivered for the first time (`alert_ids` at `now`; returns those). A
    delivery cancelled meanwhile keeps `cancelled` unless this attempt delivered it (then the receiver has it,
    and the row says so)."""
    state = _DELIVERIES.c.state

    def attempts(prefix: str, still_open: Any) -> Any:
        source = _unnested(_DELIVERIES, _ATTEMPT_COLUMNS, prefix)
        return (update(_DELIVERIES).where(_DELIVERIES.c.id == source.c.id, still_open)
                .values({name: source.c[name] for name in _ATTEMPT_COLUMNS[1:]}).cte(f"recorded_{prefix}"))

    delivered = attempts("d", state.in_([DeliveryState.pending.value, DeliveryState.cancelled.value]))
    failed = attempts("f", state == DeliveryState.pending.value)
    deferred = (update(_DELIVERIES)
                .where(_DELIVERIES.c.id == func.any(bindparam("deferred_ids", type_=ARRAY(Text()))),
                       state == DeliveryState.pending.value)
                .values(next_attempt_at=bindparam("deferred_until")).cte("deferred"))
    return (update(_ALERTS)
            .where(_ALERTS.c.id == func.any(bindparam("alert_ids", type_=ARRAY(Text()))),
                   _ALERTS.c.first_delivered_at.is_(None))
            .values(first_delivered_at=bindparam("now"))
            .returning(_ALERTS.c.id, _ALERTS.c.first_accepted_at, _ALERTS.c.opened_at)
            .add_cte(delivered, failed, deferred))


async def record_attempts(session: AsyncSession, delivered: Sequence[dict[str, Any]],
                          failed: Sequence[dict[str, Any]], deferred: Sequence[str], defer_until: datetime,
                          alert_ids: Sequence[str], now: datetime) -> list[tuple[str, datetime, datetime]]:
    """Store the outcomes of many attempts in ONE statement (one round trip, where each kind took one): rows of
    delivered attempts and of the others (each with the keys of `_ATTEMPT_COLUMNS`), the ids of deliveries put back
    unsent until `defer_until`, and the first successful delivery of the alerts `alert_ids`. Returns (alert id,
    report accepted at, alert opened at) of the alerts delivered for the first time now."""
    params: dict[str, Any] = {
        **_arrays(_DELIVERIES, delivered, _ATTEMPT_COLUMNS, "d"), **_arrays(_DELIVERIES, failed, _ATTEMPT_COLUMNS, "f"),
        "deferred_ids": list(deferred), "deferred_until": defer_until, "alert_ids": sorted(set(alert_ids)),
        "now": now,
    }
    rows = await session.execute(_attempts_recorded(), params)
    return [(str(alert_id), accepted_at, opened_at) for alert_id, accepted_at, opened_at in rows.all()]


async def cancel_deliveries(session: AsyncSession, delivery_ids: Sequence[str], now: datetime, reason: str) -> None:
    """Pending deliveries that must not be sent any more (their body or channel is gone) become `cancelled`."""
    if delivery_ids:
        await session.execute(
            update(Delivery).where(Delivery.id.in_(delivery_ids), Delivery.state == DeliveryState.pending.value)
            .values(state=DeliveryState.cancelled.value, last_error=reason, last_attempt_at=now)
        )


async def cancel_pending_deliveries_of_body(session: AsyncSession, body_id: str, now: datetime, reason: str) -> int:
    """Cancel every pending delivery to a body (it was deactivated); returns how many."""
    cancelled = await session.scalars(
        update(Delivery).where(Delivery.body_id == body_id, Delivery.state == DeliveryState.pending.value)
        .values(state=DeliveryState.cancelled.value, last_error=reason, last_attempt_at=now)
        .returning(Delivery.id)
    )
    return len(cancelled.all())


async def notify_work(session: AsyncSession) -> None:
    """NOTIFY the replicas (delivered at commit, folded into one per transaction) that deliveries or outbox rows
    were queued. For the rare API actions; the consumer and the escalation worker, which queue work all the time,
    notify after their commit through the service's `shared.runtime.NotificationListener` instead, since notifying
    commits are serialised by PostgreSQL on one global lock."""
    await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": WAKE_CHANNEL})


# --- channel secrets (key rotation) ----------------------------------------------------------------------------------


async def bodies_for_update(session: AsyncSession) -> Sequence[Body]:
    """Every body, locked until the end of the transaction (in id order, so that two runs cannot deadlock)."""
    return (await session.scalars(select(Body).order_by(Body.id).with_for_update())).all()


# --- consuming assessments a batch at a time (a fixed number of statements per batch, whatever its size) ----------

_ALERTS: Table = Alert.__table__  # type: ignore[assignment]  # a Table, typed as FromClause
_NOTIFICATIONS: Table = Notification.__table__  # type: ignore[assignment]
_PROCESSED: Table = ProcessedEvent.__table__  # type: ignore[assignment]
_ASSESSED: Table = AssessedReport.__table__  # type: ignore[assignment]
_OUTBOX: Table = OutboxMessage.__table__  # type: ignore[assignment]

ALERT_COLUMNS: tuple[str, ...] = tuple(c.name for c in _ALERTS.columns if c.computed is None)
"""The columns an alert row is written with (the generated ones excluded): what a new alert inserts."""
ALERT_CHANGED_COLUMNS: tuple[str, ...] = (
    "report_ids", "level", "score", "report", "assessment", "state", "updated_at", "deadline_seconds",
    "ack_deadline", "ack_deadline_working", "ack_deadline_rule", "escalation_exhausted", "highest_union_level",
    "resolved_at", "outcome", "note",
)
"""What an assessment can change on an existing alert (a join, a level raise, an expiry)."""


# A batch's rows travel as one array per column and are unnested by PostgreSQL (`unnest($1::t1[], $2::t2[], ...)`):
# one statement whatever the number of rows, with the same text every time, so SQLAlchemy compiles it and asyncpg
# prepares it once (a multi-row VALUES list has a new text, and a new compilation, for every row count).


def _is_json(table: Table, name: str) -> bool:
    return isinstance(table.c[name].type, JSON)


def _array_binds(table: Table, columns: Sequence[str], prefix: str) -> list[Any]:
    """One typed array parameter (`<prefix>_<column>`) per column of `table`. JSON columns travel as text (a JSON
    array inside an array parameter would read as a second dimension)."""
    return [bindparam(f"{prefix}_{name}", type_=ARRAY(Text() if _is_json(table, name) else table.c[name].type))
            for name in columns]


def _unnested(table: Table, columns: Sequence[str], prefix: str = "u") -> Any:
    """`unnest` of the array parameters of `columns` (`_array_binds`), as a derived table with those columns."""
    return func.unnest(*_array_binds(table, columns, prefix)).table_valued(*columns).render_derived()


def _column(table: Table, source: Any, name: str) -> Any:
    """A column of an unnested source, as the table's type (JSON cast back from text; None is SQL NULL)."""
    return cast(source.c[name], table.c[name].type) if _is_json(table, name) else source.c[name]


def _arrays(table: Table, rows: Sequence[dict[str, Any]], columns: Sequence[str],
            prefix: str = "u") -> dict[str, list[Any]]:
    arrays: dict[str, list[Any]] = {}
    for name in columns:
        values = [row[name] for row in rows]
        if _is_json(table, name):
            values = [None if value is None else json.dumps(value, ensure_ascii=False) for value in values]
        arrays[f"{prefix}_{name}"] = values
    return arrays


@lru_cache(maxsize=32)
def _insert_unnested(table: Table, columns: tuple[str, ...], prefix: str = "u") -> Any:
    source = _unnested(table, columns, prefix)
    return insert(table).from_select(list(columns), select(*(_column(table, source, name) for name in columns)))


@lru_cache(maxsize=64)
def _inserts_in_one(parts: tuple[tuple[Table, tuple[str, ...]], ...]) -> Any:
    """One statement inserting into each table of `parts` from its own unnested arrays (`t<i>_<column>`): all but
    the last as data-modifying CTEs of the last. PostgreSQL runs them on one snapshot and fires their AFTER
    triggers (and checks their foreign keys) once all are done, so a row may refer to a row inserted beside it."""
    *first, last = [_insert_unnested(table, columns, f"t{index}") for index, (table, columns) in enumerate(parts)]
    return last.add_cte(*(statement.cte(f"insert_{index}") for index, statement in enumerate(first)))


@lru_cache(maxsize=1)
def _processed_insert() -> Any:
    return _insert_unnested(_PROCESSED, ("event_id", "processed_at")).on_conflict_do_nothing(
        index_elements=[_PROCESSED.c.event_id]).returning(_PROCESSED.c.event_id)


@lru_cache(maxsize=4)
def _processed_storing(columns: tuple[str, ...]) -> Any:
    """The ledger's insert, and in the same statement the assessed reports of the events it recorded now: of each
    report, the first such row in input order (`WITH ORDINALITY`), and none of a report already stored."""
    fresh = _processed_insert().cte("fresh")
    binds = [bindparam("a_event_id", type_=ARRAY(Text())), *_array_binds(_ASSESSED, columns, "a")]
    source = func.unnest(*binds).table_valued("event_id", *columns, with_ordinality="position").render_derived()
    firsts = (
        select(*(_column(_ASSESSED, source, name) for name in columns))
        .where(source.c.event_id.in_(select(fresh.c.event_id)))
        .ext(distinct_on(source.c.report_id)).order_by(source.c.report_id, source.c.position)
    )
    stored = (insert(_ASSESSED).from_select(list(columns), firsts)
              .on_conflict_do_nothing(index_elements=[_ASSESSED.c.report_id]).cte("stored"))
    return select(fresh.c.event_id).add_cte(stored)


async def mark_processed_storing(session: AsyncSession, event_ids: Sequence[str], now: datetime,
                                 assessed: Sequence[tuple[str, dict[str, Any]]]) -> set[str]:
    """The consumed events recorded (`mark_processed_many`) and, in the same statement (one round trip), the
    `assessed` rows (event id, row) of those recorded now stored with a plain `INSERT ... ON CONFLICT DO NOTHING`:
    the first per report, and a report already stored keeps its first assessment (a redelivery changes nothing).
    Returns the ids recorded now."""
    if not assessed:
        return await mark_processed_many(session, event_ids, now)
    ids = list(dict.fromkeys(event_ids))
    columns = tuple(assessed[0][1])
    params = {"u_event_id": ids, "u_processed_at": [now] * len(ids),
              "a_event_id": [event_id for event_id, _ in assessed],
              **_arrays(_ASSESSED, [row for _, row in assessed], columns, "a")}
    return set(await session.scalars(_processed_storing(columns), params))


async def mark_processed_many(session: AsyncSession, event_ids: Sequence[str], now: datetime) -> set[str]:
    """Record consumed events in one statement; the ids recorded now (the others were recorded before: copies)."""
    ids = list(dict.fromkeys(event_ids))
    if not ids:
        return set()
    rows = await session.scalars(_processed_insert(), {"u_event_id": ids, "u_processed_at": [now] * len(ids)})
    return set(rows)


@lru_cache(maxsize=1)
def _unresolved_for_update() -> Any:
    keys = _unnested(_ALERTS, ("credit_code", "kind"))
    return (
        select(_ALERTS).where(tuple_(_ALERTS.c.credit_code, _ALERTS.c.kind).in_(select(keys.c.credit_code,
                                                                                      keys.c.kind)),
                              _ALERTS.c.state != AlertState.resolved.value)
        .order_by(_ALERTS.c.credit_code, _ALERTS.c.kind).with_for_update(of=_ALERTS)
    )


async def unresolved_alerts_for_update(session: AsyncSession,
                                       keys: Sequence[tuple[str, str]]) -> dict[tuple[str, str], Alert]:
    """The unresolved alerts of these (credit_code, kind) keys, locked in key order (two batches locking some of
    the same alerts never wait on each other in a cycle), as detached rows by key: the caller decides on them in
    memory and writes them back with `update_alerts`."""
    unique = sorted(set(keys))
    if not unique:
        return {}
    rows = await session.execute(_unresolved_for_update(), {"u_credit_code": [code for code, _ in unique],
                                                            "u_kind": [kind for _, kind in unique]})
    alerts = [Alert(**dict(row._mapping)) for row in rows]
    return {(alert.credit_code, alert.kind): alert for alert in alerts}


async def active_bodies_in_provinces(session: AsyncSession, provinces: Sequence[str]) -> dict[str, Body]:
    """The active bodies of these provinces (two-digit code prefixes), by id: one query for a batch."""
    if not provinces:
        return {}
    rows = await session.scalars(
        select(Body).where(Body.active.is_(True),
                           or_(*(Body.region_code.startswith(province) for province in sorted(set(provinces)))))
    )
    return {body.id: body for body in rows}


@lru_cache(maxsize=1)
def _alerts_update() -> Any:
    changed = _unnested(_ALERTS, ("id", *ALERT_CHANGED_COLUMNS))
    return (update(_ALERTS).where(_ALERTS.c.id == changed.c.id)
            .values({name: _column(_ALERTS, changed, name) for name in ALERT_CHANGED_COLUMNS}))


async def update_alerts(session: AsyncSession, alerts: Sequence[Alert]) -> None:
    """Write back what a batch changed on existing alerts (`ALERT_CHANGED_COLUMNS`): one `UPDATE ... FROM
    unnest(...)` for all of them."""
    if alerts:
        rows = [{name: getattr(alert, name) for name in ("id", *ALERT_CHANGED_COLUMNS)} for alert in alerts]
        await session.execute(_alerts_update(), _arrays(_ALERTS, rows, ("id", *ALERT_CHANGED_COLUMNS)))


async def insert_decided(session: AsyncSession, *, alerts: Sequence[Alert], notifications: Sequence[dict[str, Any]],
                         deliveries: Sequence[dict[str, Any]], outbox: Sequence[dict[str, Any]]) -> None:
    """What a batch of assessments made, in ONE statement (one round trip, where four tables took four): new alerts
    (detached `Alert` objects), notifications (each one's inbox entry follows by trigger, row by row, once the
    alerts beside them are in), pending deliveries, and `alerts.v1` outbox rows in the order given (ids follow it:
    the relay publishes in id order). Rows of one table have the same keys."""
    alert_rows = [{name: getattr(alert, name) for name in ALERT_COLUMNS} for alert in alerts]
    parts = [(table, rows) for table, rows in ((_ALERTS, alert_rows), (_NOTIFICATIONS, notifications),
                                               (_DELIVERIES, deliveries), (_OUTBOX, outbox)) if rows]
    if not parts:
        return
    params: dict[str, list[Any]] = {}
    for index, (table, rows) in enumerate(parts):
        params |= _arrays(table, rows, tuple(rows[0]), f"t{index}")
    await session.execute(_inserts_in_one(tuple((table, tuple(rows[0])) for table, rows in parts)), params)
