"""What the `BatchConsumer` tests on a real broker stand on: a topic prefix of their own with a producer and an
admin client (`open_broker`), the consumer group's committed offsets, a consumer on `reports.v1`, and reports of
one enterprise to send (one partition, in order)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.events import ReportAccepted, Topic
from shared.kafka import DEFAULT_COMMIT_INTERVAL, BatchConsumer, BatchHandler, EventProducer
from tests.conftest import fresh_topic_prefix
from tests.factories import credit_code, make_accepted


@dataclass
class Broker:
    bootstrap: str
    prefix: str
    producer: EventProducer
    admin: AIOKafkaAdminClient
    group: str = field(default_factory=lambda: f"consumer-test-{uuid.uuid4().hex[:6]}")  # one per test

    async def committed(self) -> dict[TopicPartition, int]:
        """The group's committed offsets (next offset to read) per partition."""
        offsets = await self.admin.list_consumer_group_offsets(f"{self.prefix}{self.group}")
        return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}

    async def total_committed(self) -> int:
        return sum((await self.committed()).values())

    def consumer(self, handler: BatchHandler, *, max_records: int = 100, pipelined: bool = False,
                 commit_interval: float = DEFAULT_COMMIT_INTERVAL) -> BatchConsumer:
        """A consumer of the test's group on `reports.v1`."""
        return BatchConsumer(name=self.group, topics=[Topic.reports], group_id=self.group,
                             bootstrap_servers=self.bootstrap, producer=self.producer, handle=handler,
                             topic_prefix=self.prefix, max_records=max_records, pipelined=pipelined,
                             commit_interval=commit_interval)


@asynccontextmanager
async def open_broker(kafka_bootstrap: str, client_id: str) -> AsyncIterator[Broker]:
    """A fresh topic prefix with its producer and admin client, closed afterwards."""
    prefix = await asyncio.to_thread(fresh_topic_prefix, kafka_bootstrap)
    producer = EventProducer(kafka_bootstrap, client_id=client_id, topic_prefix=prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        yield Broker(kafka_bootstrap, prefix, producer, admin)
    finally:
        await admin.close()
        await producer.stop()


def reports(count: int, code: str | None = None) -> list[ReportAccepted]:
    """Reports on one enterprise: one partition, in order (offsets from 0 on a fresh topic)."""
    code = code or credit_code()
    return [make_accepted(enterprise={"credit_code": code}) for _ in range(count)]


async def send(broker: Broker, accepted: Sequence[ReportAccepted]) -> None:
    await broker.producer.send_events([(Topic.reports, event) for event in accepted])
