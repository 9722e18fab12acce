"""`python -m shared.dlq replay` on a real broker: dead letters made by a real BatchConsumer go back to their
original topic with their key, value and CloudEvents headers, and are processed once the cause is fixed."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from shared.dlq import replay
from shared.events import Topic, topic_name
from shared.kafka import BatchConsumer, EventProducer, Incoming
from tests.conftest import KafkaReader, fresh_topic_prefix
from tests.factories import make_accepted
from tests.risk.test_fault_tolerance import wait_until
from tests.support.processes import REPO

pytestmark = pytest.mark.integration


class FlakyHandler:
    """Processes reports; fails (as a bug would) on the ones in `broken` until they are fixed."""

    def __init__(self, broken: set[str]) -> None:
        self.broken = broken
        self.processed: list[str] = []

    async def __call__(self, batch: Sequence[Incoming]) -> None:
        for item in batch:
            report_id = str(getattr(item.event, "report_id", ""))
            if report_id in self.broken:
                raise ValueError(f"cannot handle {report_id}")
        self.processed.extend(str(getattr(item.event, "report_id", "")) for item in batch)


@pytest.mark.asyncio(loop_scope="session")
async def test_dead_letters_are_replayed_to_their_topic_and_processed_after_the_fix(kafka_bootstrap: str) -> None:
    prefix = await asyncio.to_thread(fresh_topic_prefix, kafka_bootstrap)
    producer = EventProducer(kafka_bootstrap, client_id="dlq-test", topic_prefix=prefix)
    reports = [make_accepted() for _ in range(5)]
    broken = {str(reports[1].report_id), str(reports[3].report_id)}
    handler = FlakyHandler(set(broken))
    consumer = BatchConsumer(name="dlq-test", topics=[Topic.reports], group_id="dlq-test",
                             bootstrap_servers=kafka_bootstrap, producer=producer, handle=handler,
                             topic_prefix=prefix, max_attempts=2)
    running = asyncio.create_task(consumer.run())
    dlq = topic_name(Topic.reports.dlq, prefix)
    reader = KafkaReader(kafka_bootstrap, prefix)
    try:
        await producer.send_events([(Topic.reports, report) for report in reports])

        async def dead_lettered() -> list[object] | None:
            letters = await reader.read_all(Topic.reports.dlq, idle_ms=500)
            return letters if len(letters) == len(broken) else None

        await wait_until(dead_lettered, "the two dead letters", timeout=60)
        assert sorted(handler.processed) == sorted(str(r.report_id) for r in reports if str(r.report_id) not in broken)

        dry = await replay(bootstrap_servers=kafka_bootstrap, dlq_topic=dlq, dry_run=True)
        assert (dry.depth, dry.replayed, dry.dry_run) == (2, 2, True)
        assert dry.targets == {topic_name(Topic.reports, prefix): 2}
        later = await replay(bootstrap_servers=kafka_bootstrap, dlq_topic=dlq,
                             since=datetime.now(UTC) + timedelta(hours=1))
        assert (later.replayed, later.skipped) == (0, 2)
        await asyncio.sleep(1.0)
        assert set(handler.processed).isdisjoint(broken), "a dry run or a filtered run sent something"

        handler.broken.clear()  # the fix
        replayed_before = REGISTRY.get_sample_value("kafka_dlq_messages_replayed_total", {"topic": dlq}) or 0.0
        result = await replay(bootstrap_servers=kafka_bootstrap, dlq_topic=dlq)
        assert result.replayed == 2
        assert REGISTRY.get_sample_value("kafka_dlq_messages_replayed_total", {"topic": dlq}) == replayed_before + 2

        async def all_processed() -> bool:
            return broken <= set(handler.processed)

        await wait_until(all_processed, "the replayed reports processed", timeout=60)
    finally:
        await consumer.stop()
        await running
        await producer.stop()

    assert sorted(handler.processed) == sorted(str(report.report_id) for report in reports)
    on_topic = await reader.read_all(Topic.reports.value, idle_ms=500)
    replays = [record for record in on_topic if any(key == "dlq_replay_of" for key, _ in record.headers)]  # type: ignore[attr-defined]
    assert len(replays) == 2
    originals = {str(report.report_id): report for report in reports}
    for record in replays:
        headers = dict(record.headers)  # type: ignore[attr-defined]
        event = json.loads(record.value)  # type: ignore[attr-defined]
        original = originals[event["report_id"]]
        assert record.key == original.key.encode()  # type: ignore[attr-defined]
        assert headers["ce_id"] == str(original.event_id).encode()
        assert headers["ce_specversion"] == b"1.0"
        assert not any(key.startswith("dlq_") and key != "dlq_replay_of" for key in headers)
        assert headers["dlq_replay_of"].decode().startswith(f"{dlq}/")
    # The dead-letter topic is left as it was: an audit trail.
    assert len(await reader.read_all(Topic.reports.dlq, idle_ms=500)) == 2


def test_the_command_line_counts_without_sending_on_a_dry_run(kafka_bootstrap: str) -> None:
    prefix = fresh_topic_prefix(kafka_bootstrap)
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap, "KAFKA_TOPIC_PREFIX": prefix,
           "ENVIRONMENT": "development"}
    result = subprocess.run([sys.executable, "-m", "shared.dlq", "replay", "--topic", "alerts.v1.dlq", "--dry-run",
                             "--since", "2026-01-01T00:00:00Z"],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary == {"topic": f"{prefix}alerts.v1.dlq", "depth": 0, "replayed": 0, "skipped": 0, "dry_run": True,
                       "targets": {}}
    refused = subprocess.run([sys.executable, "-m", "shared.dlq", "replay", "--topic", "alerts.v1"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert refused.returncode == 2
    assert "not a dead-letter topic" in refused.stderr
