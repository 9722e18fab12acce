"""A pipelined `BatchConsumer` on a real broker: a batch's finish (the risk consumer's publish) runs while the next
batch is handled, yet no offset is committed before its batch is handled AND finished, batches finish in order, and
a finish that fails rewinds to its batch, so that it and the batch handled meanwhile are read and finished again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest
import pytest_asyncio
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError
from aiokafka.partitioner import DefaultPartitioner

from shared.kafka import DEFAULT_PARTITIONS, Finish, Incoming
from tests.factories import credit_code
from tests.risk.test_fault_tolerance import wait_until
from tests.shared.consumer_broker import Broker, open_broker, reports, send

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

MAX_RECORDS = 4  # small batches: a wave of reports is read in several

@pytest_asyncio.fixture(loop_scope="session")
async def broker(kafka_bootstrap: str) -> AsyncIterator[Broker]:
    async with open_broker(kafka_bootstrap, "pipelined-test") as opened:
        yield opened


@dataclass
class GatedHandler:
    """Records what it handles; each batch's finish waits for `gate`, checks that none of its batch's offsets is
    committed yet, optionally fails once, then records what it finished."""

    broker: Broker
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    fail_first_finish: bool = False
    handled: list[list[str]] = field(default_factory=list)
    finished: list[list[str]] = field(default_factory=list)
    committed_too_early: list[str] = field(default_factory=list)

    async def __call__(self, batch: Sequence[Incoming]) -> Finish | None:
        ids = [str(getattr(item.event, "report_id", "")) for item in batch]
        self.handled.append(ids)

        async def finish() -> None:
            await self.gate.wait()
            committed = await self.broker.committed()
            for item in batch:
                tp = TopicPartition(item.record.topic, item.record.partition)
                if committed.get(tp, 0) > item.record.offset:
                    self.committed_too_early.append(str(getattr(item.event, "report_id", "")))
            if self.fail_first_finish:
                self.fail_first_finish = False
                raise KafkaConnectionError("broker gone while publishing")
            self.finished.append(ids)

        return finish


def codes_on_two_partitions() -> tuple[str, str]:
    """Two credit codes whose reports go to different partitions."""
    partitions = list(range(DEFAULT_PARTITIONS))
    partition = DefaultPartitioner()
    first = credit_code()
    while True:
        second = credit_code()
        if partition(second.encode(), partitions, partitions) != partition(first.encode(), partitions, partitions):
            return first, second


def flat(batches: list[list[str]]) -> list[str]:
    return [report_id for batch in batches for report_id in batch]


@asynccontextmanager
async def consuming(broker: Broker, handler: GatedHandler, *, pipelined: bool = True) -> AsyncIterator[None]:
    """The consumer runs inside the block; after it (even after a failed assertion) the gate opens, so that no
    finish is left waiting, and the consumer stops."""
    consumer = broker.consumer(handler, pipelined=pipelined, max_records=MAX_RECORDS)
    running = asyncio.create_task(consumer.run())
    try:
        yield
    finally:
        handler.gate.set()
        await consumer.stop()
        await running


async def test_offsets_are_committed_only_after_the_batch_is_handled_and_finished(broker: Broker) -> None:
    handler = GatedHandler(broker)
    first, second = (every := reports(8))[:4], every[4:]
    async with consuming(broker, handler):
        await send(broker, first)
        await wait_until(lambda: _async(len(flat(handler.handled)) >= 4), "the first reports handled", timeout=60)
        await send(broker, second)
        # Pipelined: the next batch is handled while the first one's finish still waits.
        await wait_until(lambda: _async(len(handler.handled) >= 2), "a second batch handled", timeout=60)
        await asyncio.sleep(0.5)  # a commit made too early would have landed by now
        assert await broker.total_committed() == 0, "offsets committed before their batch was finished"
        assert handler.finished == []

        handler.gate.set()
        everything = [event.report_id for event in [*first, *second]]
        await wait_until(lambda: _async(sorted(flat(handler.finished)) == sorted(everything)), "every batch finished",
                         timeout=60)
        await wait_until(lambda: _total_is(broker, 8), "every offset committed", timeout=30)
    assert handler.committed_too_early == []
    assert handler.finished == handler.handled, "batches finished out of order or twice"
    assert flat(handler.finished) == [event.report_id for event in [*first, *second]]  # one partition: in order


async def test_a_failed_finish_reads_its_batch_and_the_one_handled_meanwhile_again(broker: Broker) -> None:
    handler = GatedHandler(broker, fail_first_finish=True)
    # The batch handled meanwhile is on another partition: rewinding the failed batch's partition is not enough.
    code_a, code_b = codes_on_two_partitions()
    first, second = reports(4, code_a), reports(4, code_b)
    everything = [event.report_id for event in [*first, *second]]
    async with consuming(broker, handler):
        await send(broker, first)
        await wait_until(lambda: _async(len(flat(handler.handled)) >= 4), "the first reports handled", timeout=60)
        await send(broker, second)
        await wait_until(lambda: _async(len(handler.handled) >= 2), "a second batch handled", timeout=60)
        handled_before_failure = flat(handler.handled)
        handler.gate.set()  # the first finish fails: as if the broker went away while publishing
        await wait_until(lambda: _async(sorted(set(flat(handler.finished))) == sorted(everything)),
                         "every report finished after the failure", timeout=60)
        await wait_until(lambda: _total_is(broker, 8), "every offset committed", timeout=30)
    assert handler.committed_too_early == []
    # Everything handled before the failure (the failed batch and the one handled meanwhile, whose finish must not
    # run out of order) was handled again, and finished in order.
    handled_after = flat(handler.handled)[len(handled_before_failure):]
    assert set(handled_before_failure) <= set(handled_after)
    finished = flat(handler.finished)
    assert sorted(finished) == sorted(everything), "a report finished twice after the rewind"
    for wave in (first, second):  # in order within each partition
        assert [report_id for report_id in finished if report_id in {e.report_id for e in wave}] == [
            e.report_id for e in wave]


async def test_stopping_finishes_and_commits_the_batch_in_flight(broker: Broker) -> None:
    handler = GatedHandler(broker)
    consumer = broker.consumer(handler, pipelined=True, max_records=MAX_RECORDS)
    running = asyncio.create_task(consumer.run())
    batch = reports(3)
    await send(broker, batch)
    await wait_until(lambda: _async(len(flat(handler.handled)) >= 3), "the reports handled", timeout=60)
    await consumer.stop()
    await asyncio.sleep(0.5)
    assert not running.done(), "the consumer left before its batch in flight was finished"
    handler.gate.set()
    await running
    assert flat(handler.finished) == [event.report_id for event in batch]
    assert await broker.total_committed() == 3


async def test_a_sequential_consumer_runs_the_finish_before_committing_and_before_the_next_batch(
    broker: Broker,
) -> None:
    handler = GatedHandler(broker)
    handler.gate.set()
    first, second = (every := reports(8))[:4], every[4:]
    async with consuming(broker, handler, pipelined=False):
        await send(broker, first)
        await send(broker, second)
        await wait_until(lambda: _total_is(broker, 8), "every offset committed", timeout=60)
    assert handler.committed_too_early == []
    assert handler.finished == handler.handled


async def _async(value: bool) -> bool:
    return value


async def _total_is(broker: Broker, count: int) -> bool:
    return await broker.total_committed() == count
