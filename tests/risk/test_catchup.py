"""The risk consumer's batch work on real Kafka and PostgreSQL (issue 15, catch-up speed): a batch costs the same
number of SQL statements whatever its size, a redelivered batch publishes its stored events again with their
original event ids, and reports on one enterprise in one batch count each other (C16, C17) exactly as they would
one batch at a time."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from services.risk import service
from services.risk.scoring.rubric import load_rubric
from shared.db import transaction
from shared.events import AlertChanged, AlertState, ReportAccepted, ReportAssessed, RiskLevel, Topic, parse_event
from shared.report import ReportKind
from tests.conftest import KafkaReader
from tests.factories import credit_code, make_accepted
from tests.risk.conftest import RiskWorld
from tests.support.statements import counted

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

RUBRIC = load_rubric("task7-v1")
RED = {"workers_involved": 320, "collective_action": ["road_blocking"]}
ASSESSED = "SELECT count(*) FROM risk.assessments WHERE report_id = ANY(:ids)"



async def assess(db: AsyncEngine, batch: Sequence[ReportAccepted]) -> list[service.Publishable]:
    """One batch through the service as the consumer calls it (here in one transaction, committed)."""
    async with transaction(async_sessionmaker(db, expire_on_commit=False)) as session:
        return await service.assess_batch(session, RUBRIC, batch, datetime.now(UTC))


def varied(count: int) -> list[ReportAccepted]:
    """Reports on a few enterprises, some red (they count as open alerts for the next ones)."""
    codes = [credit_code() for _ in range(3)]
    return [make_accepted(enterprise={"credit_code": codes[n % 3]}, **(RED if n % 4 == 0 else {}))
            for n in range(count)]


def points(outcome: ReportAssessed, criterion: str) -> int:
    return sum(reason.points for reason in outcome.reasons if reason.criterion == criterion)


async def test_a_batch_costs_the_same_statements_whatever_its_size(risk: RiskWorld) -> None:
    fresh: dict[int, int] = {}
    again: dict[int, int] = {}
    for size in (1, 10, 60):
        batch = varied(size)
        with counted(risk.db) as statements:
            assert len(await assess(risk.db, batch)) == size
        fresh[size] = len(statements)
        with counted(risk.db) as statements:  # the same batch redelivered: everything is stored already
            assert len(await assess(risk.db, batch)) == size
        again[size] = len(statements)

    assert fresh[1] == fresh[10] == fresh[60]
    assert again[1] == again[10] == again[60] < fresh[1]
    assert (fresh[1], again[1]) == (2, 1)  # one read (stored, history, open alerts) and one insert of the new ones


async def test_alert_states_of_a_batch_are_one_statement_and_the_latest_wins(risk: RiskWorld) -> None:
    code = credit_code()
    start = datetime.now(UTC)

    def changed(alert_id: str, state: AlertState, seconds: int) -> AlertChanged:
        return AlertChanged(trace_id="t", event_type="alert.resolved" if state == AlertState.resolved else
                            "alert.opened", alert_id=alert_id, credit_code=code, kind=ReportKind.arrears,
                            level=RiskLevel.yellow, state=state, report_ids=["x"],
                            occurred_at=start + timedelta(seconds=seconds))

    sessions = async_sessionmaker(risk.db)
    counts = []
    for events in ([changed("c-1", AlertState.open, 0)],
                   # c-2: resolved, then an older "open" event of it read late; c-3: opened then resolved.
                   [changed("c-2", AlertState.resolved, 5), changed("c-2", AlertState.open, 1),
                    changed("c-3", AlertState.open, 1), changed("c-3", AlertState.resolved, 2),
                    changed("c-4", AlertState.open, 3)]):
        with counted(risk.db) as statements:
            async with transaction(sessions) as session:
                await service.record_alerts(session, events)
        counts.append(len(statements))

    assert counts[0] == counts[1] == 1
    states = {alert: await risk.scalar("SELECT state FROM risk.alert_states WHERE alert_id = :a", a=alert)
              for alert in ("c-1", "c-2", "c-3", "c-4")}
    assert states == {"c-1": "open", "c-2": "resolved", "c-3": "resolved", "c-4": "open"}


async def test_reports_on_one_enterprise_in_one_batch_count_each_other_as_one_at_a_time(risk: RiskWorld) -> None:
    now = datetime.now(UTC)

    def sequence(code: str) -> list[ReportAccepted]:
        # C16: 200 days ago is outside every later report's 90-day window. C17: a report at yellow or above opens
        # an alert that the next ones count (one starts as a plain one: nothing is open on a new enterprise).
        return [make_accepted(enterprise={"credit_code": code}, occurred_at=(now - timedelta(days=d)).isoformat(),
                              **(RED if d == 60 else {"workers_involved": 3, "migrant_workers_involved": 0}))
                for d in (200, 60, 30, 10)]

    together = [item.event for item in await assess(risk.db, sequence(credit_code()))]
    one_by_one = [(await assess(risk.db, [accepted]))[0].event for accepted in sequence(credit_code())]

    assert [points(outcome, "C16") for outcome in together] == [0, 0, 5, 10]
    assert not together[0].level.alerts
    assert together[1].level == RiskLevel.red
    assert [points(outcome, "C17") > 0 for outcome in together] == [False, False, True, True]
    assert [(o.score, o.level, o.reasons) for o in together] == [(o.score, o.level, o.reasons) for o in one_by_one]


async def test_a_redelivered_batch_publishes_its_stored_events_with_their_event_ids(risk: RiskWorld) -> None:
    batch = varied(30)
    ids = [accepted.report_id for accepted in batch]

    await risk.publish(Topic.reports, *batch)
    await risk.wait_until(ASSESSED, lambda n: n == len(batch), ids=ids)
    await risk.publish(Topic.reports, *batch)  # as after a crash between the publish and the offset commit
    reader = KafkaReader(risk.env["KAFKA_BOOTSTRAP_SERVERS"], risk.env["KAFKA_TOPIC_PREFIX"])

    published: dict[str, list[ReportAssessed]] = {}
    for _ in range(30):
        published = {}
        for record in await reader.read_all(Topic.assessments.value):
            assessed = parse_event(record.value)  # type: ignore[attr-defined]
            if isinstance(assessed, ReportAssessed) and assessed.report_id in ids:
                published.setdefault(assessed.report_id, []).append(assessed)
        if sum(len(copies) for copies in published.values()) >= 2 * len(batch):
            break
    assert sorted(published) == sorted(ids)
    for copies in published.values():
        assert len(copies) == 2
        assert copies[0].event_id == copies[1].event_id
        assert copies[0] == copies[1]  # the same event, whether scored now or read back from its stored row
    assert await risk.scalar(ASSESSED, ids=ids) == len(batch)


async def test_events_sent_encoded_land_on_the_partitions_of_their_keys_in_order(risk: RiskWorld) -> None:
    """`send_encoded` fills record batches itself: each enterprise's events must still land on the partition
    `send_events` gives its key, in the order sent, also when a partition needs several batches."""
    codes = [credit_code() for _ in range(8)]
    base = [make_accepted(enterprise={"credit_code": code}) for code in codes]
    await risk.producer.send_events([(Topic.reports.value, accepted) for accepted in base])
    # ~3 MB over at most 6 partitions: several 256 kB record batches for each partition that gets some.
    many = [make_accepted(enterprise={"credit_code": codes[n % 8]}, summary="工资" * 750) for n in range(600)]
    await risk.producer.send_encoded(
        [(Topic.reports.value, accepted, accepted.model_dump_json().encode()) for accepted in many]
    )
    reader = KafkaReader(risk.env["KAFKA_BOOTSTRAP_SERVERS"], risk.env["KAFKA_TOPIC_PREFIX"])
    records = [record for record in await reader.read_all(Topic.reports.value)
               if record.key.decode() in codes]  # type: ignore[attr-defined]

    partition_of = {record.key.decode(): record.partition  # type: ignore[attr-defined]
                    for record in records if parse_event(record.value).event_id in  # type: ignore[attr-defined]
                    {accepted.event_id for accepted in base}}
    sent_ids = {accepted.event_id for accepted in many}
    landed: dict[str, list[Any]] = {}
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):  # type: ignore[attr-defined]
        parsed = parse_event(record.value)  # type: ignore[attr-defined]
        if parsed.event_id in sent_ids:
            assert record.partition == partition_of[record.key.decode()]  # type: ignore[attr-defined]
            landed.setdefault(record.key.decode(), []).append(parsed.event_id)  # type: ignore[attr-defined]
    for code in codes:
        assert landed[code] == [accepted.event_id for accepted in many if accepted.report.enterprise.credit_code
                                == code]
    await risk.wait_until(ASSESSED, lambda n: n == len(many) + len(base),
                          ids=[accepted.report_id for accepted in [*base, *many]], timeout=60)
