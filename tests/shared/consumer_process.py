"""A `BatchConsumer` in a process of its own, for the crash test of tests/shared/test_coalesced_commits.py: it
prints `handled <report id>` (flushed) for every report it handled, and is killed (SIGKILL) by the test.

    python -m tests.shared.consumer_process BOOTSTRAP PREFIX GROUP MAX_RECORDS COMMIT_INTERVAL
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence

from shared.events import Topic
from shared.kafka import BatchConsumer, EventProducer, Finish, Incoming


async def _print_handled(batch: Sequence[Incoming]) -> Finish | None:
    for item in batch:
        sys.stdout.write(f"handled {getattr(item.event, 'report_id', '')}\n")
    sys.stdout.flush()
    return None


async def main(bootstrap: str, prefix: str, group: str, max_records: int, commit_interval: float) -> None:
    producer = EventProducer(bootstrap, client_id=group, topic_prefix=prefix)
    consumer = BatchConsumer(name=group, topics=[Topic.reports], group_id=group, bootstrap_servers=bootstrap,
                             producer=producer, handle=_print_handled, topic_prefix=prefix,
                             max_records=max_records, commit_interval=commit_interval)
    await consumer.run()


if __name__ == "__main__":
    bootstrap, prefix, group, max_records, commit_interval = sys.argv[1:6]
    asyncio.run(main(bootstrap, prefix, group, int(max_records), float(commit_interval)))
