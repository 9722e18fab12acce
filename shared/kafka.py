"""Kafka plumbing: an idempotent event producer and a batch consumer with manual commits and a dead-letter topic.

Delivery contract (DESIGN.md): consumers process a batch in one database transaction, then commit offsets (those
of a few batches together, see `BatchConsumer`); every handler is idempotent, so a redelivery changes nothing. A
message that cannot be parsed, or that keeps failing on its own, goes to `<topic>.dlq` with the error in its headers
and the consumer moves on. A failure of the infrastructure (database or broker down) never dead-letters: the batch
is retried from the same offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    CommitFailedError,
    KafkaConnectionError,
    KafkaError,
    MessageSizeTooLargeError,
    OutOfOrderSequenceNumber,
    TopicAlreadyExistsError,
)
from aiokafka.partitioner import DefaultPartitioner
from pydantic import ValidationError

from shared.db import is_transient_database_error
from shared.events import (
    AnyEvent,
    EventBase,
    Topic,
    parse_event,
    topic_name,
)
from shared.logging import trace_context
from shared.metrics import (
    KAFKA_CONSUMED,
    KAFKA_DLQ,
    KAFKA_LAG,
    KAFKA_PROCESSING,
    KAFKA_PRODUCED,
    KAFKA_PRODUCER_RESETS,
)

log = logging.getLogger(__name__)

DEFAULT_PARTITIONS = 6
# Seconds a done batch's offsets may wait to be committed with others (BatchConsumer): at 50 reports/s one
# OffsetCommit per 25 reports instead of one per report, while a crash replays at most half a second of records.
DEFAULT_COMMIT_INTERVAL = 0.5
# How long a stopping consumer tries to commit what is pending: with the broker gone aiokafka would retry until
# cancelled, and what it could not commit is only read again.
FINAL_COMMIT_TIMEOUT = 5.0
CONTRACT_TOPICS: tuple[str, ...] = tuple(
    name for topic in Topic for name in (topic.value, topic.dlq)
)


def cloudevent_headers(event: EventBase, *, source: str) -> list[tuple[str, bytes]]:
    """CloudEvents Kafka binding attributes, so that other tools can read our topics."""
    event_type = getattr(event, "event_type", "unknown")
    return [
        ("ce_specversion", b"1.0"),
        ("ce_id", str(event.event_id).encode()),
        ("ce_source", source.encode()),
        ("ce_type", f"cn.labour-risk.{event_type}".encode()),
        ("ce_time", event.occurred_at.isoformat().encode()),
        ("ce_dataschemaversion", str(event.schema_version).encode()),
        ("ce_traceid", event.trace_id.encode()),
        ("content-type", b"application/json"),
    ]


def is_transient(error: BaseException) -> bool:
    """Errors of the infrastructure: retry the same batch later instead of dead-lettering it.

    The database counts by SQLSTATE class, not only by exception type: 08 (connection), 40 (serialization
    failure, deadlock), 53 (too many connections, disk full), 57 (shutting down, starting up) and 25006 (read-only
    after a failover), and a pool timeout. None of them says anything about the message.
    """
    if is_transient_database_error(error):
        return True
    return isinstance(error, OSError | TimeoutError | KafkaError | ConnectionError)


async def delete_prefixed_topics(bootstrap_servers: str, prefixes: Sequence[str]) -> int:
    """Delete every topic whose name starts with one of `prefixes` (non-empty: never the unprefixed contract
    topics); returns how many. For deployments that share a cluster through a topic prefix and are taken down, and
    for test and benchmark runs, which create topics under a prefix of their own: left behind, their partitions
    pile up in a long-lived broker until it runs out of file descriptors."""
    wanted = tuple(prefix for prefix in prefixes if prefix)
    if not wanted:
        return 0
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        doomed = [topic for topic in await admin.list_topics() if topic.startswith(wanted)]
        if doomed:
            await admin.delete_topics(doomed)
        return len(doomed)
    finally:
        await admin.close()


def transient_retry_delay(failures: int) -> float:
    """Backoff between retries of a batch that failed on the infrastructure: 1, 2, 4 ... 30 s."""
    return float(min(2.0 ** max(failures - 1, 0), 30.0))


async def ensure_topics(bootstrap_servers: str, prefix: str = "", partitions: int = DEFAULT_PARTITIONS) -> None:
    """Create the contract topics (and their DLQs) under `prefix` when they do not exist yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [topic_name(name, prefix) for name in CONTRACT_TOPICS if topic_name(name, prefix) not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(
                    [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in missing]
                )
            # Creation is acknowledged before every broker's metadata shows the topics; a consumer subscribing in
            # that gap would see no partitions until its next metadata refresh.
            for _ in range(100):
                if set(missing) <= set(await admin.list_topics()):
                    break
                await asyncio.sleep(0.1)
    finally:
        await admin.close()


@functools.lru_cache(maxsize=65536)
def _partition_for_key(key: bytes, partitions: tuple[int, ...]) -> int:
    """The partition aiokafka's default partitioner gives a key (murmur2, as the Java client), remembered: a
    consumer catching up sends many events of the same enterprises."""
    return int(DefaultPartitioner()(key, list(partitions), list(partitions)))


class EventProducer:
    """An idempotent producer (`acks=all`) that sends pydantic events and rebuilds itself when wedged.

    After a broker blip aiokafka's idempotent producer can stay stuck on OutOfOrderSequenceNumber until it is
    recreated (aio-libs/aiokafka#1017): `send_events` notices that and rebuilds it before re-raising.
    """

    def __init__(self, bootstrap_servers: str, *, client_id: str, topic_prefix: str = "") -> None:
        self._bootstrap_servers = bootstrap_servers
        self._client_id = client_id
        self._topic_prefix = topic_prefix
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()
        for name in CONTRACT_TOPICS:  # every topic's series at 0 from the start
            KAFKA_PRODUCED.labels(topic=topic_name(name, topic_prefix))

    def _build(self) -> AIOKafkaProducer:
        return AIOKafkaProducer(
            bootstrap_servers=self._bootstrap_servers,
            client_id=self._client_id,
            enable_idempotence=True,
            acks="all",
            # No linger: aiokafka keeps one request in flight per broker, and what is sent meanwhile waits in the
            # next batch, so batches grow with the load by themselves. A linger only delayed every event of a quiet
            # moment by that much on each hop (5 ms: p50 produce → consumed 9.3 ms, without it 4.7 ms).
            linger_ms=0,
            max_batch_size=256 * 1024,
            request_timeout_ms=15000,
        )

    async def _ensure_started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = self._build()
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def reset(self) -> None:
        async with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            with contextlib.suppress(Exception):
                await producer.stop()

    async def stop(self) -> None:
        await self.reset()

    def topic(self, topic: Topic | str) -> str:
        return topic_name(topic, self._topic_prefix)

    async def send_events(self, items: Sequence[tuple[Topic | str, EventBase]]) -> None:
        """Send events and wait until the broker has acknowledged every one (in order per key)."""
        await self.send_raw(
            [
                (self.topic(topic), event.key.encode(), event.model_dump_json().encode(),
                 cloudevent_headers(event, source=self._client_id))
                for topic, event in items
            ]
        )

    async def send_encoded(self, items: Sequence[tuple[Topic | str, EventBase, bytes]]) -> None:
        """`send_events` for events already serialised (`value` is the event's JSON), e.g. because the same JSON
        was stored with them: the event gives the key and the CloudEvents headers.

        For large batches (a consumer catching up): the messages go out as record batches filled here, one
        partition at a time (aiokafka `create_batch`/`send_batch`), on the partitions `send` would choose for their
        keys, in order per partition. That saves a coroutine, a partitioner call and a future per message; the
        producer's guarantees (idempotence, `acks=all`, retries) are the same, batch by batch.
        """
        await self.send_raw_batched([
            (self.topic(topic), event.key.encode(), value, cloudevent_headers(event, source=self._client_id))
            for topic, event, value in items
        ])

    async def send_raw_batched(self, messages: Sequence[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]],
                               ) -> None:
        """`send_raw` by record batches filled here (see `send_encoded`); every message needs a key."""
        if not messages:
            return
        async with self._producing(messages) as producer:
            futures: list[asyncio.Future[Any]] = []
            filling: dict[tuple[str, int], Any] = {}  # (topic, partition) → aiokafka BatchBuilder
            partitions: dict[str, list[int]] = {}
            for topic, key, value, headers in messages:
                if key is None:
                    raise ValueError("send_raw_batched needs a key per message (it chooses the partition)")
                if topic not in partitions:
                    partitions[topic] = sorted(await producer.partitions_for(topic))
                partition = _partition_for_key(key, tuple(partitions[topic]))
                builder = filling.get((topic, partition))
                if builder is None:
                    builder = filling[(topic, partition)] = producer.create_batch()
                if builder.append(timestamp=None, key=key, value=value, headers=headers) is None:  # full
                    futures.append(await producer.send_batch(builder, topic, partition=partition))
                    builder = filling[(topic, partition)] = producer.create_batch()
                    if builder.append(timestamp=None, key=key, value=value, headers=headers) is None:
                        raise MessageSizeTooLargeError(f"a message of {len(value)} bytes does not fit in a batch")
            for (topic, partition), builder in filling.items():
                futures.append(await producer.send_batch(builder, topic, partition=partition))
            await asyncio.gather(*futures)

    async def send_raw(self, messages: Sequence[tuple[str, bytes | None, bytes, list[tuple[str, bytes]]]]) -> None:
        async with self._producing(messages) as producer:
            futures = [
                await producer.send(topic, value=value, key=key, headers=headers)
                for topic, key, value, headers in messages
            ]
            await asyncio.gather(*futures)

    @contextlib.asynccontextmanager
    async def _producing(self, messages: Sequence[tuple[str, Any, Any, Any]]) -> AsyncIterator[AIOKafkaProducer]:
        """The started producer for sending `messages`: rebuilt when it wedged or lost the broker (the error goes on
        to the caller, who retries), the messages counted once all were acknowledged."""
        producer = await self._ensure_started()
        try:
            yield producer
        except OutOfOrderSequenceNumber:
            KAFKA_PRODUCER_RESETS.inc()
            log.warning("idempotent producer wedged on OutOfOrderSequenceNumber; rebuilding it")
            await self.reset()
            raise
        except KafkaConnectionError:
            await self.reset()
            raise
        for topic, count in Counter(topic for topic, *_ in messages).items():
            KAFKA_PRODUCED.labels(topic=topic).inc(count)

    async def healthy(self, timeout: float = 3.0) -> bool:
        """True when the broker answers a metadata request."""
        try:
            producer = await asyncio.wait_for(self._ensure_started(), timeout)
            await asyncio.wait_for(producer.client.fetch_all_metadata(), timeout)
        except Exception:
            return False
        return True


CONSUMED_OUTCOMES = ("processed", "dead_lettered")


def initialise_consumer_metrics(topic: str) -> None:
    """Every labelled Kafka counter of a consumed topic at zero, so that dashboards and `increase()` see it."""
    KAFKA_DLQ.labels(topic=topic)
    KAFKA_PROCESSING.labels(topic=topic)
    for outcome in CONSUMED_OUTCOMES:
        KAFKA_CONSUMED.labels(topic=topic, outcome=outcome)


@dataclass(frozen=True, slots=True)
class Incoming:
    """A consumed message and its parsed event."""

    record: ConsumerRecord[bytes, bytes]
    event: AnyEvent

    @property
    def topic(self) -> str:
        return str(self.record.topic)


Finish = Callable[[], Awaitable[None]]
"""What a handler leaves to do once its transaction is committed, before the offsets may be committed (e.g. publish
what it stored). A pipelined `BatchConsumer` runs it while it handles the next batch."""

BatchHandler = Callable[[Sequence[Incoming]], Awaitable[Finish | None]]


@dataclass(slots=True)
class _InFlight:
    """A pipelined batch whose handler is done and whose finish and offset commit run in `task`."""

    task: asyncio.Task[None]
    starts: dict[TopicPartition, int]  # its first offset per partition: where a failure rewinds to


class _CommitBeforeRevoke(ConsumerRebalanceListener):  # type: ignore[misc]
    """Before partitions are taken away: waits for the batch being handled, then `before_revoke` (the batch in
    flight finished and every done batch's offsets committed), so that the next owner starts after them.

    aiokafka calls `on_partitions_revoked` before it rejoins the group (the generation is still valid, so a commit
    made there counts) and logs and swallows what it raises; the assignment is in place until the rejoin is done.
    """

    def __init__(self, lock: asyncio.Lock, on_assigned: Callable[[set[TopicPartition]], None],
                 before_revoke: Callable[[], Awaitable[object]]) -> None:
        self._lock = lock
        self._on_assigned = on_assigned
        self._before_revoke = before_revoke

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        async with self._lock:
            await self._before_revoke()
            log.info("partitions revoked", extra={"partitions": sorted(f"{tp.topic}:{tp.partition}" for tp in revoked)})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._on_assigned(assigned)
        log.info("partitions assigned", extra={"partitions": sorted(f"{tp.topic}:{tp.partition}" for tp in assigned)})


class BatchConsumer:
    """Reads batches from topics, hands them to `handle` (one transaction), then commits their offsets.

    A handler may return a `Finish` (e.g. publish what it stored). By default it runs at once, as part of the batch.
    With `pipelined=True` it runs in the background while the next batch is handled, so that the process does not
    sit idle waiting for the broker's acknowledgements; a batch's offsets are committed only once its handler and
    its finish both succeeded, and batches finish in order (the next one's finish starts after the previous one is
    done). When a finish fails, every partition is rewound to the first offset not known to be
    finished, so the batches after it are read again too: handlers must be idempotent, as they are anyway.

    Offsets are committed in coalesced requests, not one per batch: a done batch's offsets become pending, and a
    background flusher commits what is pending at most every `commit_interval` seconds (at once when `max_records`
    records or more are pending, or when `commit_interval` is 0), and always before partitions are revoked and
    before the consumer stops or restarts. At a steady trickle each batch is one record, and an OffsetCommit per
    record cost a broker round trip and a wake-up per report and consumer. A crash replays what was done but not
    committed yet (at most `commit_interval` worth of records, or `max_records`): at-least-once, as between a
    handler's database commit and its offset commit anyway. A committed offset never goes backwards: per partition
    only an offset above the last one committed by this member in its current assignment is committed.
    """

    def __init__(
        self,
        *,
        name: str,
        topics: Sequence[Topic],
        group_id: str,
        bootstrap_servers: str,
        producer: EventProducer,
        handle: BatchHandler,
        topic_prefix: str = "",
        max_records: int = 500,
        max_attempts: int = 3,
        pipelined: bool = False,
        commit_interval: float = DEFAULT_COMMIT_INTERVAL,
    ) -> None:
        self.name = name
        self._topics = [topic_name(topic, topic_prefix) for topic in topics]
        # Deployments sharing a cluster through a topic prefix get their own consumer groups too: a member of
        # another deployment (or one that crashed there) never holds up this group's rebalances.
        self._group_id = f"{topic_prefix}{group_id}"
        self._bootstrap_servers = bootstrap_servers
        self._producer = producer
        self._handle = handle
        self._max_records = max_records
        self._max_attempts = max_attempts
        self._lock = asyncio.Lock()
        self._consumer: AIOKafkaConsumer | None = None
        self._stopping = asyncio.Event()
        self._assigned: set[TopicPartition] = set()
        for topic in self._topics:
            # Start the counters at zero so that `increase()` in alert rules sees the first dead letter.
            initialise_consumer_metrics(topic)
        self._transient_failures = 0
        self._pipelined = pipelined
        self._in_flight: _InFlight | None = None
        # After a finish failed for a reason of its own, the batch read again finishes inline, where a failing
        # message is isolated (and dead-lettered) as in the sequential mode.
        self._finish_inline = False
        if commit_interval < 0:
            raise ValueError("commit_interval must be 0 (commit after every batch) or more")
        self._commit_interval = commit_interval
        # Offsets of done batches not committed yet (next offset to read per partition), how many records they
        # cover, and the offsets this member committed: all three belong to one assignment (`_epoch`), and are
        # forgotten when it changes, since another member may have committed anything meanwhile.
        self._pending: dict[TopicPartition, int] = {}
        self._pending_records = 0
        self._committed: dict[TopicPartition, int] = {}
        self._epoch = 0
        self._commit_lock = asyncio.Lock()  # one commit at a time, so that they reach the broker in order
        self._has_pending = asyncio.Event()

    # --- lifecycle -----------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Consume until `stop()`; reconnects with backoff when the broker is unreachable."""
        delay = 1.0
        while not self._stopping.is_set():
            try:
                await self._run_once()
                delay = 1.0
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("consumer %s failed; restarting in %.0f s", self.name, delay)
                await self._sleep(delay)
                delay = min(delay * 2, 30.0)

    async def stop(self) -> None:
        self._stopping.set()

    async def healthy(self) -> bool:
        return self._consumer is not None and not self._stopping.is_set()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), seconds)

    async def _run_once(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap_servers,
            group_id=self._group_id,
            client_id=f"{self.name}-consumer",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_poll_records=self._max_records,
            # Latency first, batches under load: the broker answers a fetch as soon as one record is there
            # (fetch_min_bytes 1), so no record waits for others; what arrives while a batch is being handled comes
            # in the next fetch, up to `max_records`, so batches grow with the load by themselves. A larger
            # fetch_min_bytes would make every record at a low rate wait up to fetch_max_wait_ms. That wait then
            # bounds only an idle fetch's long poll (aiokafka keeps one fetch per broker in flight, and sends none
            # while fetched records wait to be consumed).
            fetch_min_bytes=1,
            fetch_max_wait_ms=500,
            session_timeout_ms=30000,
            heartbeat_interval_ms=3000,
            # Notice new partitions and topics created after start-up within seconds, not the 5 min default.
            metadata_max_age_ms=10000,
        )
        before_revoke = functools.partial(self._before_revoke, consumer)
        consumer.subscribe(self._topics, listener=_CommitBeforeRevoke(self._lock, self._set_assigned, before_revoke))
        await consumer.start()
        self._consumer = consumer
        flusher = asyncio.create_task(self._flush_periodically(consumer), name=f"{self.name}-commit-flusher")
        try:
            while not self._stopping.is_set():
                batches = await consumer.getmany(timeout_ms=500, max_records=self._max_records)
                if batches:
                    async with self._lock:
                        await self._process(consumer, batches)
                elif self._in_flight is not None and self._in_flight.task.done():
                    async with self._lock:  # a failed finish rewinds at once, not at the next batch
                        await self._settle(consumer, {})
                await self._update_lag(consumer)
        finally:
            self._consumer = None
            try:
                # The batch in flight publishes and commits before the consumer leaves (a failure rewinds nothing:
                # its offsets stay uncommitted and whoever owns the partitions next reads it again).
                await self._settle(consumer, None)
            finally:
                try:
                    # A commit the flusher had under way is not lost: aiokafka finishes it, and what it had taken
                    # goes back to the pending offsets, committed here with what was done since.
                    flusher.cancel()
                    await asyncio.wait({flusher})  # not `await flusher`: its cancellation is not this task's
                    try:
                        await asyncio.wait_for(self._flush(consumer), FINAL_COMMIT_TIMEOUT)
                    except TimeoutError:
                        log.warning("offsets not committed before the consumer left; the next owner reads them again")
                finally:
                    await consumer.stop()

    def _set_assigned(self, assigned: set[TopicPartition]) -> None:
        for tp in self._assigned - assigned:
            with contextlib.suppress(KeyError):
                KAFKA_LAG.remove(tp.topic, str(tp.partition))
        self._assigned = set(assigned)
        self._new_epoch()  # a batch read before this assignment commits nothing (its records are read again)

    async def _before_revoke(self, consumer: AIOKafkaConsumer) -> None:
        """Under the batch lock, before partitions go: the pipelined batch in flight finishes, and every done
        batch's offsets are committed; what could not be is forgotten (the next owner reads it again)."""
        if self._pipelined:
            await self._settle(consumer, None)
        try:
            await self._flush(consumer)
        finally:
            self._new_epoch()

    def _new_epoch(self) -> None:
        self._epoch += 1
        self._pending.clear()
        self._pending_records = 0
        self._committed.clear()

    # --- one batch -----------------------------------------------------------------------------------------
    async def _process(
        self, consumer: AIOKafkaConsumer, batches: dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]
    ) -> None:
        started = time.perf_counter()
        epoch = self._epoch
        records = [record for tp_records in batches.values() for record in tp_records]
        incoming, poison = self._parse(records)
        starts = {tp: tp_records[0].offset for tp, tp_records in batches.items()}
        # Pipelined: the finishes are collected (with the messages they count as processed) and run after the
        # previous batch's; None: each runs at once, inside the failure isolation below.
        deferred: list[tuple[Sequence[Incoming], Finish | None]] | None = (
            [] if self._pipelined and not self._finish_inline else None
        )
        try:
            for record, error in poison:
                await self._dead_letter(record, error)
            await self._handle_isolating_failures(incoming, deferred)
        except Exception as error:
            if not is_transient(error):
                raise
            # Pause and retry the very same batch: no offset is committed and nothing is dead-lettered, however
            # long the outage lasts. The consumer keeps its group membership (heartbeats run in the background).
            if not await self._settle(consumer, starts):
                return  # the batch before failed too: rewound to its offsets, and paused
            self._transient_failures += 1
            delay = transient_retry_delay(self._transient_failures)
            log.warning("batch failed on the infrastructure (%s); retrying from the same offsets in %.0f s",
                        type(error).__name__, delay)
            if self._pipelined:
                self._rewind(consumer, starts)
            else:
                for tp, tp_records in batches.items():
                    consumer.seek(tp, tp_records[0].offset)
            await self._sleep(delay)
            return
        offsets = {tp: tp_records[-1].offset + 1 for tp, tp_records in batches.items()}
        topics = {record.topic for record in records}
        if deferred is not None:
            # The batch before must be finished first: offsets become pending (and are committed) in order.
            if await self._settle(consumer, starts):
                self._in_flight = _InFlight(
                    asyncio.create_task(self._finish(consumer, deferred, offsets, len(records), epoch, topics,
                                                     started),
                                        name=f"{self.name}-finish"),
                    starts,
                )
            return
        self._transient_failures = 0
        self._finish_inline = False
        await self._done(consumer, offsets, len(records), epoch)
        self._observe(topics, started)

    async def _finish(self, consumer: AIOKafkaConsumer, deferred: list[tuple[Sequence[Incoming], Finish | None]],
                      offsets: dict[TopicPartition, int], records: int, epoch: int, topics: set[str],
                      started: float) -> None:
        """A pipelined batch's finishes in order, then its offsets (in the background)."""
        for _, finish in deferred:
            if finish is not None:
                await finish()
        for items, _ in deferred:
            self._count(items, "processed")
        await self._done(consumer, offsets, records, epoch)
        self._observe(topics, started)

    async def _settle(self, consumer: AIOKafkaConsumer, rewind_also: dict[TopicPartition, int] | None) -> bool:
        """Wait for the pipelined batch in flight (finished and committed); True if there was none or it succeeded.

        If it failed, every partition of it and of `rewind_also` (the batch handled since, whose finish must not
        run now) is rewound to its first offset, and the consumer pauses like after a failed batch (transient) or
        finishes the batch read again inline (a failure of its own). `rewind_also` None: the consumer is closing or
        losing its partitions, nothing to rewind (uncommitted offsets are read again by whoever owns them next).
        """
        in_flight, self._in_flight = self._in_flight, None
        if in_flight is None:
            return True
        try:
            await asyncio.wait({in_flight.task})
        except asyncio.CancelledError:
            in_flight.task.cancel()
            raise
        error = None if in_flight.task.cancelled() else in_flight.task.exception()
        if not in_flight.task.cancelled() and error is None:
            self._transient_failures = 0
            return True
        if rewind_also is None:
            return False
        starts = dict(rewind_also)
        for tp, offset in in_flight.starts.items():
            starts[tp] = min(offset, starts.get(tp, offset))
        self._rewind(consumer, starts)
        if error is not None and not is_transient(error):
            log.warning("finishing a batch failed (%s); reading it again and finishing it inline", error)
            self._finish_inline = True
            return False
        self._transient_failures += 1
        delay = transient_retry_delay(self._transient_failures)
        log.warning("finishing a batch failed on the infrastructure (%s); retrying from its offsets in %.0f s",
                    type(error).__name__, delay)
        await self._sleep(delay)
        return False

    def _rewind(self, consumer: AIOKafkaConsumer, starts: dict[TopicPartition, int]) -> None:
        assigned = consumer.assignment()
        for tp, offset in starts.items():
            if tp in assigned:  # a partition given away meanwhile is read from its committed offset by its owner
                consumer.seek(tp, offset)

    # --- offset commits ------------------------------------------------------------------------------------
    async def _done(self, consumer: AIOKafkaConsumer, offsets: dict[TopicPartition, int], records: int,
                    epoch: int) -> None:
        """A batch is done (handled and finished): its offsets become pending, committed by the flusher, or at
        once when the interval is 0 or `max_records` records are pending."""
        if epoch != self._epoch:
            return  # read before a rebalance: its partitions may be someone else's now, who reads it again
        self._add_pending(offsets)
        self._pending_records += records
        if self._commit_interval == 0 or self._pending_records >= self._max_records:
            await self._flush(consumer)
        else:
            self._has_pending.set()

    def _add_pending(self, offsets: dict[TopicPartition, int]) -> None:
        """Merge `offsets` into the pending ones: per partition the highest (pending offsets never go back)."""
        for tp, offset in offsets.items():
            if offset > self._pending.get(tp, -1):
                self._pending[tp] = offset

    async def _flush_periodically(self, consumer: AIOKafkaConsumer) -> None:
        """The flusher: once offsets are pending, waits `commit_interval` and commits what is pending by then."""
        while True:
            await self._has_pending.wait()
            await asyncio.sleep(self._commit_interval)
            try:
                await self._flush(consumer)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # kept pending: tried again, not at once (the interval may be 0)
                delay = max(self._commit_interval, 1.0)
                log.warning("committing offsets failed (%s); trying again in %.1f s", error, delay)
                await asyncio.sleep(delay)

    async def _flush(self, consumer: AIOKafkaConsumer) -> None:
        """Commit the pending offsets of partitions still assigned, each only if above what this member has
        committed for it (a rewind reads records again whose offsets are already committed)."""
        async with self._commit_lock:
            self._has_pending.clear()
            epoch, assigned = self._epoch, consumer.assignment()
            offsets = {tp: offset for tp, offset in self._pending.items()
                       if tp in assigned and offset > self._committed.get(tp, -1)}
            self._pending, self._pending_records = {}, 0
            if not offsets:
                return
            try:
                await consumer.commit(offsets)
            except CommitFailedError:
                # The group rebalanced: another member re-reads these messages and, handlers being idempotent,
                # changes nothing.
                log.warning("offset commit failed after a rebalance; the new owner will skip what is done")
                return
            except BaseException:
                if epoch == self._epoch:  # not committed: pending again, with what was done meanwhile
                    self._add_pending(offsets)
                    self._has_pending.set()
                raise
            if epoch == self._epoch:
                for tp, offset in offsets.items():
                    self._committed[tp] = max(offset, self._committed.get(tp, -1))

    @staticmethod
    def _observe(topics: set[str], started: float) -> None:
        for topic in topics:
            KAFKA_PROCESSING.labels(topic=topic).observe(time.perf_counter() - started)

    def _parse(
        self, records: list[ConsumerRecord[bytes, bytes]]
    ) -> tuple[list[Incoming], list[tuple[ConsumerRecord[bytes, bytes], str]]]:
        incoming: list[Incoming] = []
        poison: list[tuple[ConsumerRecord[bytes, bytes], str]] = []
        for record in records:
            try:
                if record.value is None:
                    raise ValueError("empty message value")
                incoming.append(Incoming(record, parse_event(record.value)))
            except (ValidationError, ValueError) as error:
                poison.append((record, f"unparseable event: {error}"[:2000]))
        return incoming, poison

    async def _handle_isolating_failures(
        self, incoming: list[Incoming], deferred: list[tuple[Sequence[Incoming], Finish | None]] | None = None
    ) -> None:
        """The whole batch in one transaction; if it fails for a reason of its own, one message at a time."""
        if not incoming:
            return
        try:
            await self._call(incoming, deferred)
        except Exception as error:
            if is_transient(error):
                raise
            log.warning("batch of %d failed (%s); isolating the failing message", len(incoming), error)
        else:
            return
        for item in incoming:
            await self._handle_one_with_retries(item, deferred)

    async def _call(self, items: Sequence[Incoming],
                    deferred: list[tuple[Sequence[Incoming], Finish | None]] | None) -> None:
        """`handle` the messages; its finish runs at once and they count as processed, or both are deferred."""
        finish = await self._handle(items)
        if deferred is not None:
            deferred.append((items, finish))
            return
        if finish is not None:
            await finish()
        self._count(items, "processed")

    async def _handle_one_with_retries(
        self, item: Incoming, deferred: list[tuple[Sequence[Incoming], Finish | None]] | None = None
    ) -> None:
        last_error: Exception | None = None
        for attempt in range(1, self._max_attempts + 1):
            try:
                with trace_context(item.event.trace_id):
                    await self._call([item], deferred)
            except Exception as error:
                if is_transient(error):
                    raise
                last_error = error
                await asyncio.sleep(0.1 * attempt)
            else:
                return
        with trace_context(item.event.trace_id):
            log.error("message keeps failing; sending it to the dead-letter topic", exc_info=last_error)
        await self._dead_letter(item.record, f"{type(last_error).__name__}: {last_error}"[:2000])

    async def _dead_letter(self, record: ConsumerRecord[bytes, bytes], error: str) -> None:
        headers = [
            *list(record.headers or ()),
            ("dlq_error", error.encode()),
            ("dlq_source_topic", record.topic.encode()),
            ("dlq_source_partition", str(record.partition).encode()),
            ("dlq_source_offset", str(record.offset).encode()),
            ("dlq_consumer_group", self._group_id.encode()),
            ("dlq_failed_at", datetime.now(UTC).isoformat().encode()),
        ]
        await self._producer.send_raw([(f"{record.topic}.dlq", record.key, record.value or b"", headers)])
        KAFKA_DLQ.labels(topic=record.topic).inc()
        KAFKA_CONSUMED.labels(topic=record.topic, outcome="dead_lettered").inc()

    @staticmethod
    def _count(items: Sequence[Incoming], outcome: str) -> None:
        for topic, count in Counter(item.record.topic for item in items).items():  # one increment per topic
            KAFKA_CONSUMED.labels(topic=topic, outcome=outcome).inc(count)

    async def _update_lag(self, consumer: AIOKafkaConsumer) -> None:
        for tp in consumer.assignment():
            highwater = consumer.highwater(tp)
            if highwater is None:
                continue
            with contextlib.suppress(KafkaError):
                position = await consumer.position(tp)  # cached once the partition has been fetched
                KAFKA_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(max(highwater - position, 0))
