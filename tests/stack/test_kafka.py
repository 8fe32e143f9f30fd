"""Kafka is a real broker: idempotent acks=all producing, independent consumer groups, key order."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from commerce_devstack.endpoints import Endpoints

KEYS = [f"order-{n}" for n in range(6)]
PER_KEY = 40


async def _consume_all(
    bootstrap: str, topic: str, group: str, expected: int
) -> list[tuple[str, int]]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: list[tuple[str, int]] = []
    try:
        async with asyncio.timeout(60):
            while len(seen) < expected:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    seen += [(r.key.decode(), int(r.value.decode())) for r in records]
        await consumer.commit()
    finally:
        await consumer.stop()
    return seen


async def test_idempotent_producer_two_groups_and_per_key_order(
    stack: Endpoints, unique: str
) -> None:
    bootstrap = stack["kafka"]["bootstrap_servers"]
    topic = f"stackcheck.kafka.{unique}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()

    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        # Interleave keys so ordering is only preserved if the broker keeps per-partition order.
        sends = [
            await producer.send(topic, key=key.encode(), value=str(seq).encode())
            for seq in range(PER_KEY)
            for key in KEYS
        ]
        metadata = await asyncio.gather(*sends)
    finally:
        await producer.stop()
    assert len({m.partition for m in metadata}) > 1, "keys should spread over partitions"

    expected = len(KEYS) * PER_KEY
    first = await _consume_all(bootstrap, topic, f"group-a-{unique}", expected)
    second = await _consume_all(bootstrap, topic, f"group-b-{unique}", expected)

    for seen in (first, second):
        assert len(seen) == expected  # nothing lost, nothing doubled
        per_key: dict[str, list[int]] = defaultdict(list)
        for key, seq in seen:
            per_key[key].append(seq)
        assert per_key == {key: list(range(PER_KEY)) for key in KEYS}
