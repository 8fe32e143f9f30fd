"""`commerce-events replay-dlq`: puts one dead-lettered record back on its original topic.

The consumers de-duplicate by event id, so replaying a record that was in fact handled is safe.
"""

from __future__ import annotations

import argparse
import asyncio

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from commerce_services.events.dead_letters import DLQ_SUFFIX


async def replay_dlq_record(bootstrap: str, dlq_topic: str, partition: int, offset: int) -> str:
    """Re-publishes the record at dlq_topic/partition/offset; returns the topic it went to."""
    if not dlq_topic.endswith(DLQ_SUFFIX):
        raise ValueError(f"{dlq_topic} is not a dead-letter topic (*{DLQ_SUFFIX})")
    tp = TopicPartition(dlq_topic, partition)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await reader.start()
    try:
        reader.assign([tp])
        reader.seek(tp, offset)
        record = await asyncio.wait_for(reader.getone(tp), 30)
    finally:
        await reader.stop()
    if record.offset != offset:
        raise LookupError(f"no record at {dlq_topic}/{partition}@{offset}")
    headers = [(k, v) for k, v in record.headers if not k.startswith("dlq-")]
    original = str(dict(record.headers).get("dlq-original-topic", b"").decode())
    if not original:
        raise LookupError("the record carries no dlq-original-topic header")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await producer.send_and_wait(original, key=record.key, value=record.value, headers=headers)
    finally:
        await producer.stop()
    return original


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="commerce-events",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    replay = sub.add_parser("replay-dlq", help="re-publish one DLQ record to its original topic")
    replay.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers")
    replay.add_argument("--topic", required=True, help="the dead-letter topic, <topic>.dlq")
    replay.add_argument("--partition", type=int, required=True)
    replay.add_argument("--offset", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        topic = asyncio.run(
            replay_dlq_record(args.bootstrap, args.topic, args.partition, args.offset)
        )
    except (ValueError, LookupError, TimeoutError) as exc:
        print(f"cannot replay: {exc}")
        return 1
    print(f"replayed {args.topic}/{args.partition}@{args.offset} to {topic}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
