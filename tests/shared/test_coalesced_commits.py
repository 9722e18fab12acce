"""Coalesced offset commits of `BatchConsumer` on a real broker: a done batch's offsets are committed with others
after `commit_interval` (not one OffsetCommit per batch), and always before partitions are revoked and before the
consumer stops; never those of a batch not done yet; never lower than what was committed; and a crash replays
exactly the records done but not committed."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
import pytest_asyncio
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

from shared.events import ReportAccepted
from shared.kafka import DEFAULT_PARTITIONS, BatchConsumer, Finish, Incoming
from tests.factories import credit_code
from tests.risk.test_fault_tolerance import wait_until
from tests.shared.consumer_broker import Broker, open_broker, reports, send
from tests.support.processes import REPO

pytestmark = [pytest.mark.integration, pytest.mark.asyncio(loop_scope="session")]

NEVER = 600.0  # a commit interval no test waits for: what is committed then was committed for another reason


@pytest_asyncio.fixture(loop_scope="session")
async def broker(kafka_bootstrap: str) -> AsyncIterator[Broker]:
    async with open_broker(kafka_bootstrap, "coalesced-test") as opened:
        yield opened


@pytest.fixture
def commits(monkeypatch: pytest.MonkeyPatch) -> list[dict[TopicPartition, int]]:
    """Every OffsetCommit request the consumers of the test make (the offsets of each, once acknowledged)."""
    made: list[dict[TopicPartition, int]] = []
    commit = AIOKafkaConsumer.commit

    async def counting(self: AIOKafkaConsumer, offsets: Any = None) -> None:
        await commit(self, offsets)
        made.append(dict(offsets))

    monkeypatch.setattr(AIOKafkaConsumer, "commit", counting)
    return made


@dataclass
class Recorder:
    """Records the reports it handles, batch by batch; a report in `held` keeps its batch's finish (pipelined)
    or its handling (sequential) waiting until `release` is set."""

    held: set[str] = field(default_factory=set)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    handled: list[list[str]] = field(default_factory=list)
    finished: list[str] = field(default_factory=list)
    finish_inline: bool = True

    async def __call__(self, batch: Sequence[Incoming]) -> Finish | None:
        ids = [str(getattr(item.event, "report_id", "")) for item in batch]
        self.handled.append(ids)

        async def finish() -> None:
            if self.held & set(ids):
                await self.release.wait()
            self.finished.extend(ids)

        if self.finish_inline:
            await finish()
            return None
        return finish

    @property
    def all_handled(self) -> list[str]:
        return [report_id for batch in self.handled for report_id in batch]


@asynccontextmanager
async def running(consumer: BatchConsumer, *handlers: Recorder) -> AsyncIterator[asyncio.Task[None]]:
    """The consumer runs inside the block; after it (even after a failed assertion) what is held is released and
    the consumer stops."""
    task = asyncio.create_task(consumer.run())
    try:
        yield task
    finally:
        for handler in handlers:
            handler.release.set()
        await consumer.stop()
        await task


def codes_per_partition() -> list[str]:
    """One credit code per partition: reports on them cover every partition."""
    partitions = list(range(DEFAULT_PARTITIONS))
    partition = DefaultPartitioner()
    found: dict[int, str] = {}
    while len(found) < DEFAULT_PARTITIONS:
        code = credit_code()
        found.setdefault(partition(code.encode(), partitions, partitions), code)
    return [found[p] for p in partitions]


def ids(accepted: Sequence[ReportAccepted]) -> list[str]:
    return [str(event.report_id) for event in accepted]


async def _true(value: bool) -> bool:
    return value


async def test_done_batches_are_committed_together_after_the_interval(
    broker: Broker, commits: list[dict[TopicPartition, int]],
) -> None:
    handler = Recorder()
    batch = reports(5)
    async with running(broker.consumer(handler, commit_interval=3.0), handler):
        for count, event in enumerate(batch, start=1):  # one at a time: a batch each, as at a trickle
            await send(broker, [event])
            await wait_until(lambda count=count: _true(len(handler.all_handled) >= count), "the report handled")
        # Committed while the consumer runs (no stop, no rebalance): by the flusher.
        await wait_until(lambda: _total_is(broker, 5), "the offsets committed after the interval", timeout=30)
        assert len(handler.handled) == 5
        assert 1 <= len(commits) < len(handler.handled), "one OffsetCommit per batch instead of coalesced ones"
    assert handler.all_handled == ids(batch)


async def test_pending_offsets_are_committed_before_partitions_are_revoked(broker: Broker) -> None:
    first, second = Recorder(), Recorder()
    codes = codes_per_partition()
    before = [event for code in codes for event in reports(1, code)]  # one report on every partition
    after = [event for code in codes for event in reports(1, code)]
    async with running(broker.consumer(first, commit_interval=NEVER), first):
        await send(broker, before)
        await wait_until(lambda: _true(sorted(first.all_handled) == sorted(ids(before))), "the first reports handled")
        assert await broker.total_committed() == 0  # pending: neither the interval nor max_records reached
        # A second member joins: the first one's partitions are revoked, and its done offsets go before them.
        async with running(broker.consumer(second, commit_interval=NEVER), second):
            await wait_until(lambda: _total_is(broker, len(before)), "the offsets committed on the revoke", timeout=60)
            await send(broker, after)
            await wait_until(lambda: _true(set(first.all_handled + second.all_handled) >= set(ids(after))),
                             "the later reports handled", timeout=60)
            assert second.all_handled, "the second member got no partition"
    assert not set(second.all_handled) & set(ids(before)), "the new owner read again what was done before the revoke"
    assert len(first.all_handled) == len(set(first.all_handled))


async def test_stopping_commits_the_pending_offsets(broker: Broker, commits: list[dict[TopicPartition, int]]) -> None:
    handler = Recorder()
    batch = reports(3)
    async with running(broker.consumer(handler, commit_interval=NEVER), handler):
        await send(broker, batch)
        await wait_until(lambda: _true(len(handler.all_handled) >= 3), "the reports handled")
        assert await broker.total_committed() == 0  # pending
        assert commits == []
    assert await broker.total_committed() == 3
    assert len(commits) == 1


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "sequential"])
async def test_the_offsets_of_a_batch_not_done_are_not_committed(
    broker: Broker, commits: list[dict[TopicPartition, int]], pipelined: bool,
) -> None:
    handler = Recorder(finish_inline=not pipelined)
    first, second = reports(1, code := credit_code()), reports(1, code)
    handler.held = set(ids(second))
    async with running(broker.consumer(handler, commit_interval=0.1, pipelined=pipelined), handler):
        await send(broker, first)
        await wait_until(lambda: _true(handler.finished == ids(first)), "the first report done")
        await wait_until(lambda: _total_is(broker, 1), "the first report's offset committed")
        await send(broker, second)
        await wait_until(lambda: _true(len(handler.all_handled) == 2), "the second report handled")
        await asyncio.sleep(1.0)  # ten intervals: a commit of the batch not done would have landed by now
        assert await broker.total_committed() == 1, "the offset of a batch not done was committed"
        handler.release.set()
        await wait_until(lambda: _total_is(broker, 2), "the second report's offset committed once it is done")
    assert handler.finished == ids(first) + ids(second)


async def test_a_rewind_below_what_is_committed_never_commits_lower_offsets(
    broker: Broker, commits: list[dict[TopicPartition, int]],
) -> None:
    handler = Recorder()
    batch = reports(8)
    consumer = broker.consumer(handler, commit_interval=0, max_records=4)
    async with running(consumer, handler):
        await send(broker, batch)
        await wait_until(lambda: _total_is(broker, 8), "every offset committed")
        (tp,) = (await broker.committed()).keys()
        assert consumer._consumer is not None
        async with consumer._lock:  # between two batches, as the consumer rewinds after a failure
            consumer._rewind(consumer._consumer, {tp: 0})
        await wait_until(lambda: _true(len(handler.all_handled) >= 16), "the reports read again")
    assert handler.all_handled == ids(batch) * 2
    assert await broker.total_committed() == 8
    committed = [offsets[tp] for offsets in commits]
    assert committed == sorted(committed), f"a commit went backwards: {committed}"


async def test_a_crash_replays_only_the_records_not_committed(broker: Broker) -> None:
    code = credit_code()
    committed_part, uncommitted_part = reports(4, code), reports(2, code)
    # max_records 4: the first four are committed once done (as much pending as a batch); the last two stay
    # pending (the interval is never reached) when the process is killed.
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.shared.consumer_process", broker.bootstrap, broker.prefix, broker.group, "4",
        str(NEVER), cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    handled: list[str] = []

    async def read_handled() -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            if line.startswith(b"handled "):
                handled.append(line.decode().split()[1])

    reader = asyncio.create_task(read_handled())
    try:
        await send(broker, committed_part)
        await wait_until(lambda: _total_is(broker, 4), "the first four committed", timeout=60)
        await send(broker, uncommitted_part)
        await wait_until(lambda: _true(len(handled) == 6), "the last two handled", timeout=60)
        assert await broker.total_committed() == 4
    finally:
        process.send_signal(signal.SIGKILL)  # a crash: no stop, no revoke, nothing flushed
        await process.wait()
        await reader
    assert handled == ids(committed_part) + ids(uncommitted_part)

    # The next member starts where the crashed one had committed (once the broker gave up on the dead member).
    replay = Recorder()
    async with running(broker.consumer(replay, commit_interval=0), replay):
        await wait_until(lambda: _true(len(replay.all_handled) >= 2), "the uncommitted records read again",
                         timeout=120)
        await wait_until(lambda: _total_is(broker, 6), "the replayed records committed")
    assert replay.all_handled == ids(uncommitted_part)


async def _total_is(broker: Broker, count: int) -> bool:
    return await broker.total_committed() == count
