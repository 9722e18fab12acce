"""Re-drive dead letters: republish the messages of a dead-letter topic to the topic they came from.

    python -m shared.dlq replay --topic reports.v1.dlq [--since 2026-11-27T00:00:00Z] [--dry-run]

Use it after the cause is fixed (a consumer bug, a rubric that did not load). Each dead letter goes back to its
original topic (header `dlq_source_topic`) with its key, value and CloudEvents headers; the `dlq_*` headers are
dropped and `dlq_replay_of` names the dead letter it came from. Consumers are idempotent (by event id), so a
message replayed twice, or one that had been processed after all, changes nothing. The dead-letter topic itself is
left as it is (an audit trail): `--since` limits a later run to newer dead letters. The run reads the topic up to
its end as of the start, so letters that fail again during the run are not replayed twice in it.

`--metrics-file` writes `kafka_dlq_messages_replayed_total` and `kafka_dlq_depth` in Prometheus' text format (for
node-exporter's textfile collector); the summary is printed as one JSON line either way.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from prometheus_client import CollectorRegistry, Counter, Gauge, write_to_textfile

from shared.events import topic_name
from shared.kafka import CONTRACT_TOPICS, EventProducer
from shared.metrics import DLQ_DEPTH, DLQ_REPLAYED
from shared.settings import ServiceSettings

DLQ_SUFFIX = ".dlq"
DLQ_HEADER_PREFIX = "dlq_"

for _name in CONTRACT_TOPICS:  # every known series at zero from the start
    if _name.endswith(DLQ_SUFFIX):
        DLQ_REPLAYED.labels(topic=_name)


@dataclass
class ReplayResult:
    """What a replay run did (or, with `dry_run`, would do)."""

    topic: str
    depth: int = 0
    replayed: int = 0
    skipped: int = 0
    dry_run: bool = False
    targets: dict[str, int] = field(default_factory=dict)


def original_topic(record: ConsumerRecord[bytes, bytes], dlq_topic: str) -> str:
    """The topic the dead letter came from: its `dlq_source_topic` header, else the DLQ name without `.dlq`."""
    for key, value in record.headers or ():
        if key == "dlq_source_topic" and value:
            return str(value.decode())
    return dlq_topic.removesuffix(DLQ_SUFFIX)


def replay_headers(record: ConsumerRecord[bytes, bytes], dlq_topic: str) -> list[tuple[str, bytes]]:
    """The message's own headers (CloudEvents, content type) without the dead-letter ones, plus where it came
    from."""
    kept = [(key, value) for key, value in record.headers or () if not key.startswith(DLQ_HEADER_PREFIX)]
    return [*kept, ("dlq_replay_of", f"{dlq_topic}/{record.partition}/{record.offset}".encode())]


def failed_at(record: ConsumerRecord[bytes, bytes]) -> datetime:
    """When the message was dead-lettered: the `dlq_failed_at` header, else the record's timestamp."""
    for key, value in record.headers or ():
        if key == "dlq_failed_at":
            try:
                parsed = datetime.fromisoformat(value.decode())
            except ValueError:
                break
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return datetime.fromtimestamp(record.timestamp / 1000, UTC)


async def replay(
    *, bootstrap_servers: str, dlq_topic: str, since: datetime | None = None, dry_run: bool = False,
    producer: EventProducer | None = None,
) -> ReplayResult:
    """Republish the dead letters of `dlq_topic` (a concrete, prefixed name) to their original topics."""
    if not dlq_topic.endswith(DLQ_SUFFIX):
        raise ValueError(f"{dlq_topic} is not a dead-letter topic (*{DLQ_SUFFIX})")
    result = ReplayResult(topic=dlq_topic, dry_run=dry_run)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers, group_id=None, enable_auto_commit=False,
        isolation_level="read_committed", client_id="dlq-replay",
    )
    own_producer = producer is None
    sender = producer or EventProducer(bootstrap_servers, client_id="dlq-replay")
    await consumer.start()
    try:
        # A consumer without subscription tracks no topic in its metadata: ask for this one.
        await consumer._client.add_topic(dlq_topic)
        partitions = sorted(consumer.partitions_for_topic(dlq_topic) or ())
        if not partitions:
            raise LookupError(f"topic {dlq_topic} does not exist")
        assigned = [TopicPartition(dlq_topic, partition) for partition in partitions]
        consumer.assign(assigned)
        starts = await consumer.beginning_offsets(assigned)
        ends = await consumer.end_offsets(assigned)
        result.depth = sum(ends[tp] - starts[tp] for tp in assigned)
        DLQ_DEPTH.labels(topic=dlq_topic).set(result.depth)
        for tp in assigned:
            consumer.seek(tp, starts[tp])
        remaining = {tp for tp in assigned if ends[tp] > starts[tp]}
        while remaining:
            batches = await consumer.getmany(*remaining, timeout_ms=1000)
            for tp, records in batches.items():
                messages = []
                for record in records:
                    if record.offset >= ends[tp]:
                        continue
                    if since is not None and failed_at(record) < since:
                        result.skipped += 1
                        continue
                    target = original_topic(record, dlq_topic)
                    result.targets[target] = result.targets.get(target, 0) + 1
                    messages.append((target, record.key, record.value or b"", replay_headers(record, dlq_topic)))
                if messages and not dry_run:
                    await sender.send_raw(messages)  # acknowledged by the broker before we go on
                    DLQ_REPLAYED.labels(topic=dlq_topic).inc(len(messages))
                result.replayed += len(messages)
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        await consumer.stop()
        if own_producer:
            await sender.stop()
    return result


def write_metrics(path: str, result: ReplayResult) -> None:
    """The run's figures in Prometheus' text format (a fresh registry: only this run's series)."""
    registry = CollectorRegistry()
    replayed = Counter(DLQ_REPLAYED._name, DLQ_REPLAYED._documentation, ["topic"], registry=registry)
    depth = Gauge(DLQ_DEPTH._name, DLQ_DEPTH._documentation, ["topic"], registry=registry)
    replayed.labels(topic=result.topic).inc(0 if result.dry_run else result.replayed)
    depth.labels(topic=result.topic).set(result.depth)
    write_to_textfile(path, registry)


def _parse_since(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shared.dlq", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    replay_command = commands.add_parser("replay", help="republish dead letters to their original topic")
    replay_command.add_argument("--topic", required=True,
                                help="dead-letter topic by its contract name, e.g. reports.v1.dlq "
                                     "(KAFKA_TOPIC_PREFIX is put in front)")
    replay_command.add_argument("--since", type=_parse_since, default=None,
                                help="only letters dead-lettered at or after this ISO 8601 time")
    replay_command.add_argument("--dry-run", action="store_true", help="count what would be replayed; send nothing")
    replay_command.add_argument("--bootstrap-servers", default=None,
                                help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS)")
    replay_command.add_argument("--metrics-file", default=None, help="write the run's metrics to this file")
    args = parser.parse_args(argv)

    settings = ServiceSettings(service_name="dlq-replay")
    bootstrap = args.bootstrap_servers or settings.kafka_bootstrap_servers
    dlq_topic = topic_name(args.topic, settings.kafka_topic_prefix)
    try:
        result = asyncio.run(replay(bootstrap_servers=bootstrap, dlq_topic=dlq_topic, since=args.since,
                                    dry_run=args.dry_run))
    except (LookupError, ValueError) as error:
        sys.stderr.write(f"dlq replay: {error}\n")
        return 2
    if args.metrics_file:
        write_metrics(args.metrics_file, result)
    sys.stdout.write(json.dumps({"topic": result.topic, "depth": result.depth, "replayed": result.replayed,
                                 "skipped": result.skipped, "dry_run": result.dry_run,
                                 "targets": result.targets}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
