"""`shared.kafka.delete_prefixed_topics`: a run's topics go with it (test sessions and benchmark runs delete theirs,
so that a broker kept running between them does not collect partitions until it runs out of files), and no other
topic does."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from shared.kafka import delete_prefixed_topics
from tests.conftest import fresh_topic_prefix

pytestmark = pytest.mark.integration


async def _topics(bootstrap: str) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


def test_only_the_topics_of_the_given_prefixes_are_deleted(kafka_bootstrap: str) -> None:
    gone, kept = fresh_topic_prefix(kafka_bootstrap), fresh_topic_prefix(kafka_bootstrap)
    before = asyncio.run(_topics(kafka_bootstrap))
    assert any(topic.startswith(gone) for topic in before)

    deleted = asyncio.run(delete_prefixed_topics(kafka_bootstrap, [gone]))

    assert deleted == sum(topic.startswith(gone) for topic in before)
    deadline = time.monotonic() + 30  # the broker removes deleted topics from its metadata shortly after
    after = asyncio.run(_topics(kafka_bootstrap))
    while any(topic.startswith(gone) for topic in after):
        assert time.monotonic() < deadline, "the deleted topics are still listed"
        time.sleep(0.2)
        after = asyncio.run(_topics(kafka_bootstrap))
    assert {topic for topic in before if topic.startswith(kept)} <= after
    assert asyncio.run(delete_prefixed_topics(kafka_bootstrap, [""])) == 0  # never the unprefixed topics
