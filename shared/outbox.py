"""The transactional outbox: events written in the same transaction as the change they describe, then published
to Kafka by a relay that marks them sent.

Kafka being down delays publication, never loses it: rows stay unsent and are retried. A crash between the
broker's acknowledgement and the `sent_at` update publishes a row twice; its event id is stable, so consumers
drop the copy.

Order: rows are published in id order, and only ONE relay per outbox table publishes at a time. Each batch is
claimed under a transaction-scoped PostgreSQL advisory lock named after the table (`pg_try_advisory_xact_lock`);
a replica that does not get it publishes nothing in that tick and stands by (it tries again at its next tick, so
it takes over at once when the publishing replica dies: the lock goes with its transaction). The earlier scheme,
every replica claiming its own rows with `FOR UPDATE SKIP LOCKED`, let two replicas publish adjacent batches
concurrently, so a later report of one enterprise could reach Kafka before an earlier one.
Why one publisher rather than partitions owned by key hash (advisory locks per partition): the per-key variant
keeps order too and spreads the work, but needs the key in the table, a partition count fixed across replicas and
a hand-over protocol when replicas come and go, while one relay already publishes whole batches (up to
`batch_size` rows per producer round trip), which is ample for the rate reports are accepted at; partitioning is
the next step only if one publisher ever falls behind. The lock is per transaction, so no session-level lock can
leak through the connection pool.

A service declares its outbox table with the mixin (the same columns and partial index in every schema) and builds
rows only with `outbox_row()`:

    class OutboxMessage(OutboxMixin, Base):
        # `alerts.v1` events written with the change they describe, published by the relay.
        __tablename__ = "outbox"
        __outbox_index__ = "ix_alerts_outbox_unsent"   # the index name its migration created

    session.add(outbox_row(OutboxMessage, Topic.alerts.value, event, now))
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol

from sqlalchemy import BigInteger, DateTime, Index, String, Text, func, literal, select, text, true, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, declared_attr, mapped_column

from shared.db import SessionFactory, transaction
from shared.events import EventBase, parse_event
from shared.kafka import EventProducer
from shared.runtime import PollingWorker


class OutboxRow(Protocol):
    """The columns an outbox table needs (each service has its own table in its own schema)."""

    id: Mapped[int]
    event_id: Mapped[str]
    topic: Mapped[str]
    payload: Mapped[str]
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]


class OutboxMixin:
    """Columns and partial index of an outbox table; mix into a service's declarative `Base` (which supplies the
    schema). `__outbox_index__` names the index on unsent rows (names are per schema, as the migrations made them).
    """

    __outbox_index__: ClassVar[str] = "ix_outbox_unsent"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    topic: Mapped[str] = mapped_column(String(100))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    @declared_attr.directive
    @classmethod
    def __table_args__(cls) -> tuple[Any, ...]:
        # The relay reads unsent rows in id order; the partial index stays small as rows get sent.
        return (Index(cls.__outbox_index__, "id", postgresql_where=text("sent_at IS NULL")),)


def outbox_row(model: Any, topic: str, event: EventBase, now: datetime) -> Any:
    """A new row of `model` (an outbox table) carrying `event` for `topic`: the one way to build outbox rows."""
    return model(**outbox_values(topic, event, now))


def outbox_channel(schema: str) -> str:
    """The PostgreSQL notification channel on which a schema's outbox writers announce committed rows
    (`shared.runtime.NotificationListener`: its relay listens, and its writers `notify()` after their commits)."""
    return f"{schema}_outbox"


def outbox_values(topic: str, event: EventBase, now: datetime) -> dict[str, Any]:
    """The column values of an outbox row carrying `event`, for a Core `insert()` (hot paths, batches)."""
    return {"event_id": str(event.event_id), "topic": topic, "payload": event.model_dump_json(), "created_at": now}


def relay_lock_key(model: Any) -> int:
    """The advisory lock key of `model`'s relay: a signed 64-bit number derived from its schema-qualified table
    name, so each service's outbox has its own publisher and the key collides with nothing else by chance."""
    table = model.__table__
    name = f"outbox-relay:{table.schema or 'public'}.{table.name}".encode()
    return int.from_bytes(hashlib.sha256(name).digest()[:8], "big", signed=True)


EventKey = Callable[[dict[str, Any]], str]
"""The Kafka key of a stored event from its parsed JSON (what the event model's `key` property gives), for relays
that publish the stored bytes (`OutboxRelay(key_of=...)`)."""

KafkaMessage = tuple[bytes, bytes, list[tuple[str, bytes]]]


def encoded_message(payload: str, *, source: str, key_of: EventKey) -> KafkaMessage:
    """`(key, value, headers)` of a stored event as `EventProducer.send_events` would send its model, without
    rebuilding the model: the value is the stored JSON itself, the key comes from `key_of`, and the CloudEvents
    headers (the ones `shared.kafka.cloudevent_headers` gives) from the envelope fields of the parsed JSON. The
    time header is rewritten from pydantic's JSON form (`...Z`) to `isoformat()`'s, as the model would give it."""
    envelope = json.loads(payload)
    occurred_at = datetime.fromisoformat(envelope["occurred_at"])
    headers = [
        ("ce_specversion", b"1.0"),
        ("ce_id", envelope["event_id"].encode()),
        ("ce_source", source.encode()),
        ("ce_type", f"cn.labour-risk.{envelope.get('event_type', 'unknown')}".encode()),
        ("ce_time", occurred_at.isoformat().encode()),
        ("ce_dataschemaversion", str(envelope["schema_version"]).encode()),
        ("ce_traceid", envelope["trace_id"].encode()),
        ("content-type", b"application/json"),
    ]
    return key_of(envelope).encode(), payload.encode(), headers


class OutboxRelay(PollingWorker):
    def __init__(
        self, *, sessions: SessionFactory, producer: EventProducer, model: Any, batch_size: int = 500,
        idle_seconds: float = 0.5, on_published: Callable[[int], None] | None = None,
        on_backlog: Callable[[int, float], None] | None = None, linger_seconds: float = 0.0,
        key_of: EventKey | None = None, source: str = "", on_standby: Callable[[], None] | None = None,
        gather_seconds: float = 0.0,
    ) -> None:
        """With `key_of` (and `source`, the producer's client id), rows are published as stored
        (`encoded_message`): no event model is parsed and serialised again per row, which was most of a relay's
        CPU. Without it, each row is parsed into its event model and sent with `send_events`.

        `on_standby` is called after a tick in which another replica's relay held the lock: that replica must be
        told (e.g. a NOTIFY, `shared.runtime.NotificationListener.notify`) that rows committed here are waiting.
        When this relay gets the lock it publishes them itself, so nobody else needs to hear of them."""
        super().__init__(idle_seconds, linger_seconds, gather_seconds)
        self._sessions = sessions
        self._producer = producer
        self._model = model
        self._batch_size = batch_size
        self._on_published = on_published
        self._on_backlog = on_backlog
        self._key_of = key_of
        self._source = source
        self.on_standby = on_standby

    async def tick(self) -> bool:
        """Publish one batch; a full batch means more rows are waiting. (Call `wake()` after a commit that wrote
        outbox rows, so that they go out without waiting for the next poll.)"""
        return await self.publish_batch() >= self._batch_size

    async def publish_batch(self) -> int:
        """Publish up to one batch of unsent rows; returns how many were published."""
        model = self._model
        async with transaction(self._sessions) as session:
            # One statement takes the lock, picks the batch and marks it sent (`_claim_batch`); the transaction
            # stays open while the batch is published, so a failed publish rolls the marks back.
            publisher, rows = await _claim_batch(session, model, self._batch_size, datetime.now(UTC))
            if rows and self._key_of is not None:
                key_of, source, producer = self._key_of, self._source, self._producer
                # Record batches filled here, in id order per partition (hence per key): no coroutine, future and
                # partitioner call per message.
                await producer.send_raw_batched([
                    (producer.topic(row.topic), *encoded_message(row.payload, source=source, key_of=key_of))
                    for row in rows
                ])
            elif rows:
                await self._producer.send_events([(row.topic, parse_event(row.payload.encode())) for row in rows])
            if rows and self._on_published:
                self._on_published(len(rows))
            if publisher and len(rows) < self._batch_size:
                # Every unsent row this transaction can see was just published: nothing is left, no need to count.
                pending, oldest = 0, None
            else:
                pending, oldest = (await session.execute(
                    select(func.count(), func.min(model.created_at)).where(model.sent_at.is_(None))
                )).one()
        if not publisher and self.on_standby is not None:
            self.on_standby()
        if self._on_backlog:
            self._on_backlog(int(pending), (datetime.now(UTC) - oldest).total_seconds() if oldest else 0.0)
        return len(rows)


async def _claim_batch(session: AsyncSession, model: Any, limit: int, now: datetime) -> tuple[bool, list[Any]]:
    """In ONE statement (one round trip, where the lock, the read and the update were three): try the relay's
    advisory lock (see the module docstring), lock up to `limit` unsent rows in id order and mark them sent at
    `now`. Returns whether this relay holds the lock, and the rows (id, topic, payload) in id order; none when
    another relay holds it. The marks are only committed with the transaction, after the publish."""
    lock = select(func.pg_try_advisory_xact_lock(relay_lock_key(model)).label("held")).cte("relay_lock")
    held = select(lock.c.held).scalar_subquery()
    picked = (select(model.id).where(model.sent_at.is_(None), held).order_by(model.id).limit(limit)
              .with_for_update().cte("picked"))
    marked = (update(model).where(model.id.in_(select(picked.c.id))).values(sent_at=now)
              .returning(model.id, model.topic, model.payload).cte("marked"))
    # One row even when nothing was marked, to say whether the lock was taken.
    one = select(literal(1).label("one")).subquery("one")
    result = (await session.execute(
        select(held.label("held"), marked.c.id, marked.c.topic, marked.c.payload)
        .select_from(one.outerjoin(marked, true()))
        .execution_options(synchronize_session=False)
    )).all()
    rows = sorted((row for row in result if row.id is not None), key=lambda row: row.id)
    return bool(result[0].held), rows
