"""One enterprise's events reach Kafka in the order they were committed, however many relays run: two relays
(separate engines and producers, as two replicas would have) publish one outbox table that two writers fill with
interleaved reports of the same credit codes; on the topic, each key's reports come in id order.

Real PostgreSQL and Kafka: the order is decided by row locks, advisory locks and broker acknowledgements, which a
fake would not have.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import KafkaConnectionError
from sqlalchemy import MetaData, func, select
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.orm import DeclarativeBase

from shared.db import create_engine, session_factory
from shared.events import ReportAccepted, Topic, parse_event, utcnow
from shared.kafka import EventProducer
from shared.outbox import OutboxMixin, OutboxRelay, outbox_row, relay_lock_key
from tests.factories import credit_code, make_accepted

pytestmark = pytest.mark.integration

SCHEMA = "ordertest"
KEYS = [credit_code(9_000_000 + n) for n in range(4)]
ROWS_PER_WRITER = 120


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)


class OrderOutbox(OutboxMixin, Base):
    __tablename__ = "outbox"
    __outbox_index__ = "ix_ordertest_outbox_unsent"


async def _prepare(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:
        await connection.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
        await connection.run_sync(Base.metadata.create_all)


async def _write(engine: AsyncEngine, writer: int, key_locks: dict[str, asyncio.Lock]) -> None:
    """One report per transaction, cycling over the keys. A key's reports are accepted one after another (the
    key's lock is held until the commit), as intake accepts them, so their commit order is their id order."""
    sessions = session_factory(engine)
    for n in range(ROWS_PER_WRITER):
        key = KEYS[(n + writer) % len(KEYS)]
        async with key_locks[key], sessions() as session, session.begin():
            event = make_accepted(str(uuid.uuid4()), enterprise={"credit_code": key})
            session.add(outbox_row(OrderOutbox, Topic.reports.value, event, utcnow()))
        await asyncio.sleep(0)


async def _read_topic(bootstrap: str, topic: str, expected: int) -> list[ReportAccepted]:
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                                enable_auto_commit=False)
    await consumer.start()
    events: list[ReportAccepted] = []
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while len(events) < expected and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=1000)
            for partition in sorted(batch, key=lambda tp: tp.partition):
                for record in batch[partition]:
                    assert record.value is not None
                    event = parse_event(record.value)
                    assert isinstance(event, ReportAccepted)
                    events.append(event)
    finally:
        await consumer.stop()
    return events


@pytest.mark.asyncio
async def test_two_relays_publish_each_key_in_commit_order(isolated_env: dict[str, str]) -> None:
    url, bootstrap = isolated_env["DATABASE_URL"], isolated_env["KAFKA_BOOTSTRAP_SERVERS"]
    prefix = isolated_env["KAFKA_TOPIC_PREFIX"]
    engines = [create_engine(url, pool_size=4) for _ in range(3)]  # the writers' and two replicas'
    producers = [EventProducer(bootstrap, client_id=f"relay-{n}", topic_prefix=prefix) for n in range(2)]
    published: list[int] = [0, 0]
    try:
        await _prepare(engines[0])
        relays = [
            OutboxRelay(sessions=session_factory(engines[n + 1]), producer=producers[n], model=OrderOutbox,
                        batch_size=3, idle_seconds=0.01,
                        on_published=lambda count, n=n: published.__setitem__(n, published[n] + count))
            for n in range(2)
        ]
        running = [asyncio.create_task(relay.run()) for relay in relays]
        key_locks = {key: asyncio.Lock() for key in KEYS}
        await asyncio.gather(*(_write(engines[0], writer, key_locks) for writer in range(2)))

        sessions = session_factory(engines[0])
        total = 2 * ROWS_PER_WRITER
        for _ in range(600):
            async with sessions() as session:
                unsent = await session.scalar(select(func.count()).where(OrderOutbox.sent_at.is_(None)))
            if unsent == 0:
                break
            await asyncio.sleep(0.1)
        assert unsent == 0
        for relay in relays:
            await relay.stop()
        await asyncio.gather(*running)

        async with sessions() as session:
            rows = (await session.scalars(select(OrderOutbox).order_by(OrderOutbox.id))).all()
        committed: dict[str, list[str]] = defaultdict(list)
        for row in rows:
            event = parse_event(row.payload.encode())
            assert isinstance(event, ReportAccepted)
            committed[event.key].append(event.report_id)

        on_topic: dict[str, list[str]] = defaultdict(list)
        for event in await _read_topic(bootstrap, f"{prefix}{Topic.reports}", total):
            on_topic[event.key].append(event.report_id)

        assert sum(len(ids) for ids in on_topic.values()) == total
        assert set(on_topic) == set(KEYS)
        for key in KEYS:
            assert on_topic[key] == committed[key], f"{key}: published out of commit order"
        assert sum(published) == total
    finally:
        for producer in producers:
            await producer.stop()
        for engine in engines:
            await engine.dispose()


def test_each_outbox_table_has_its_own_lock_key() -> None:
    class Other(OutboxMixin, Base):
        __tablename__ = "outbox_other"
        __outbox_index__ = "ix_ordertest_other_unsent"

    assert relay_lock_key(OrderOutbox) != relay_lock_key(Other)
    assert -(2**63) <= relay_lock_key(OrderOutbox) < 2**63


class BacklogOutbox(OutboxMixin, Base):
    __tablename__ = "outbox_backlog"
    __outbox_index__ = "ix_ordertest_backlog_unsent"


@pytest.mark.asyncio
async def test_the_backlog_is_reported_after_every_batch(isolated_env: dict[str, str]) -> None:
    """What `on_backlog` gets: the rows still unsent after a partial drain; zero once a batch took the last visible
    row (no count needed then); and a relay standing by (the lock is another's) still reports the backlog."""
    url, bootstrap = isolated_env["DATABASE_URL"], isolated_env["KAFKA_BOOTSTRAP_SERVERS"]
    engine = create_engine(url, pool_size=4)
    producer = EventProducer(bootstrap, client_id="relay-backlog", topic_prefix=isolated_env["KAFKA_TOPIC_PREFIX"])
    reported: list[tuple[int, float]] = []
    try:
        await _prepare(engine)
        sessions = session_factory(engine)
        async with sessions() as session, session.begin():
            for _ in range(7):
                event = make_accepted(str(uuid.uuid4()), enterprise={"credit_code": KEYS[0]})
                session.add(outbox_row(BacklogOutbox, Topic.reports.value, event, utcnow()))
        standing_by: list[int] = []
        relay = OutboxRelay(sessions=sessions, producer=producer, model=BacklogOutbox, batch_size=3,
                            on_backlog=lambda pending, age: reported.append((pending, age)),
                            on_standby=lambda: standing_by.append(len(reported)))

        async with engine.connect() as holder, holder.begin():  # another replica is publishing
            await holder.execute(select(func.pg_advisory_xact_lock(relay_lock_key(BacklogOutbox))))
            assert await relay.publish_batch() == 0
        assert reported[-1][0] == 7
        assert reported[-1][1] > 0
        assert standing_by == [0]

        assert [await relay.publish_batch() for _ in range(4)] == [3, 3, 1, 0]
        assert [pending for pending, _ in reported[1:]] == [4, 1, 0, 0]
        assert reported[-2:] == [(0, 0.0), (0, 0.0)]
        assert standing_by == [0]
    finally:
        await producer.stop()
        await engine.dispose()


class FailedOutbox(OutboxMixin, Base):
    __tablename__ = "outbox_failed"
    __outbox_index__ = "ix_ordertest_failed_unsent"


class _RefusingOnce(EventProducer):
    """A producer whose first publish fails, as when the broker drops out mid-batch."""

    refused = False

    async def send_events(self, items):  # type: ignore[no-untyped-def]
        if not self.refused:
            self.refused = True
            raise KafkaConnectionError("broker gone")
        return await super().send_events(items)


@pytest.mark.asyncio
async def test_a_batch_whose_publish_fails_stays_unsent_and_goes_out_once_at_the_next_tick(
        isolated_env: dict[str, str]) -> None:
    """The rows are marked sent in the statement that picks them, before the publish: the mark must go with the
    transaction when the publish fails."""
    url, bootstrap = isolated_env["DATABASE_URL"], isolated_env["KAFKA_BOOTSTRAP_SERVERS"]
    prefix = isolated_env["KAFKA_TOPIC_PREFIX"]
    engine = create_engine(url, pool_size=4)
    producer = _RefusingOnce(bootstrap, client_id="relay-refused", topic_prefix=prefix)
    try:
        await _prepare(engine)
        sessions = session_factory(engine)
        ids = [str(uuid.uuid4()) for _ in range(3)]
        async with sessions() as session, session.begin():
            for report_id in ids:
                event = make_accepted(report_id, enterprise={"credit_code": KEYS[1]})
                session.add(outbox_row(FailedOutbox, Topic.reports.value, event, utcnow()))
        relay = OutboxRelay(sessions=sessions, producer=producer, model=FailedOutbox)

        with pytest.raises(KafkaConnectionError):
            await relay.publish_batch()
        async with sessions() as session:
            assert await session.scalar(select(func.count()).where(FailedOutbox.sent_at.is_(None))) == 3

        assert await relay.publish_batch() == 3
        async with sessions() as session:
            assert await session.scalar(select(func.count()).where(FailedOutbox.sent_at.is_(None))) == 0
        events = await _read_topic(bootstrap, producer.topic(Topic.reports), 3)
        assert sorted(event.report_id for event in events) == sorted(ids)
    finally:
        await producer.stop()
        await engine.dispose()
