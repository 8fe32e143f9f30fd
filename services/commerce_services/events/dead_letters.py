"""Where an event goes when its handler gives up: `<topic>.dlq`, or, if even Kafka refuses,
the failed_events table of the consumer's own database, logged at CRITICAL."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from aiokafka import AIOKafkaProducer
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_services.events.tables import failed_events

log = logging.getLogger(__name__)

DLQ_SUFFIX = ".dlq"


@dataclass(frozen=True)
class RawRecord:
    """The parts of a Kafka record needed to dead-letter or replay it, whether it parsed or not."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]


class DeadLetters:
    def __init__(
        self,
        consumer: str,
        producer: AIOKafkaProducer,
        engine: AsyncEngine,
        clock: Callable[[], datetime],
        publish_timeout_s: float = 10.0,
    ) -> None:
        self._consumer = consumer
        self._producer = producer
        self._engine = engine
        self._clock = clock
        self._timeout = publish_timeout_s

    async def put(self, record: RawRecord, error: BaseException, attempts: int) -> str:
        """Parks the record; returns where ("dlq" or "failed_events"). Raises only if both
        Kafka and the database refuse, so the caller does not commit the offset."""
        reason = f"{type(error).__name__}: {error}"[:4000]
        headers = [
            *record.headers,
            ("dlq-consumer", self._consumer.encode()),
            ("dlq-error", reason.encode()),
            ("dlq-attempts", str(attempts).encode()),
            ("dlq-original-topic", record.topic.encode()),
            ("dlq-original-partition", str(record.partition).encode()),
            ("dlq-original-offset", str(record.offset).encode()),
        ]
        try:
            await asyncio.wait_for(
                self._producer.send_and_wait(
                    record.topic + DLQ_SUFFIX, value=record.value, key=record.key, headers=headers
                ),
                self._timeout,
            )
            log.error(
                "dead-lettered %s:%s@%s: %s", record.topic, record.partition, record.offset, reason
            )
            return "dlq"
        except Exception as dlq_error:  # Kafka itself failed: fall back to our own database
            log.critical(
                "cannot dead-letter %s:%s@%s (%s); storing it in failed_events",
                record.topic,
                record.partition,
                record.offset,
                dlq_error,
            )
        await self.store_failed(record, reason, attempts)
        return "failed_events"

    async def store_failed(self, record: RawRecord, reason: str, attempts: int) -> None:
        now = self._clock()
        row = {
            "consumer": self._consumer,
            "topic": record.topic,
            "kafka_partition": record.partition,
            "kafka_offset": record.offset,
            "record_key": record.key.decode("utf-8", errors="replace") if record.key else None,
            "record_value": record.value.decode("utf-8", errors="replace")
            if record.value is not None
            else None,
            "record_headers": json.dumps(
                [
                    [k, None if v is None else v.decode("utf-8", errors="replace")]
                    for k, v in record.headers
                ]
            ),
            "error": f"{reason} (after {attempts} attempt(s) by the consumer)",
            "attempts": 0,  # counts the retry worker's attempts
            "status": "PENDING",
            "next_attempt_at": now + timedelta(seconds=30),
            "created_at": now,
            "updated_at": now,
        }
        # A redelivered record that was already parked is not parked twice.
        statement = mysql_insert(failed_events).values(row).prefix_with("IGNORE")
        async with self._engine.begin() as conn:
            await conn.execute(statement)
