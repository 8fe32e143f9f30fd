"""An idempotent Kafka consumer that commits offsets only after the effect is committed.

For each record, in order per partition:
1. decode it; a malformed record is dead-lettered at once;
2. in ONE database transaction: insert (consumer, event id) into processed_events, and run the
   handler for its type on the same connection; a duplicate id means already done, a no-op;
3. retry transient failures with exponential backoff; after `max_attempts`, or on a
   PermanentError, dead-letter it (DLQ topic, else failed_events) and move on, so a poison
   message never stops its partition;
4. commit the offsets of the batch only after every record of it was handled or parked.
A crash anywhere before 4 redelivers the batch, and step 2 makes the redelivery harmless.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from opentelemetry import trace
from opentelemetry.propagate import extract
from prometheus_client import Counter, Gauge
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from tenacity import (
    AsyncRetrying,
    RetryError,
    retry_if_not_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from commerce_services.events.dead_letters import DeadLetters, RawRecord
from commerce_services.events.envelope import Event, MalformedEvent, PermanentError, decode
from commerce_services.events.tables import processed_events

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

Handler = Callable[[AsyncConnection, Event], Awaitable[None]]

# Outcomes include parked_dlq and parked_failed_events: the dead-letter counts.
EVENTS = Counter("commerce_events_total", "Events handled by outcome", ["consumer", "outcome"])
LAG = Gauge(
    "commerce_consumer_lag",
    "Records behind the partition's end after the last committed batch",
    ["consumer", "topic", "partition"],
)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 10.0


class EventConsumer:
    def __init__(
        self,
        name: str,
        consumer: AIOKafkaConsumer,
        engine: AsyncEngine,
        handlers: Mapping[str, Handler],
        dead_letters: DeadLetters,
        clock: Callable[[], datetime],
        retry: RetryPolicy = RetryPolicy(),
    ) -> None:
        self.name = name
        self._consumer = consumer
        self._engine = engine
        self._handlers = handlers
        self._dead_letters = dead_letters
        self._clock = clock
        self._retry = retry

    async def run(self, stop: asyncio.Event) -> None:
        """Consumes until `stop` is set; the caller starts and stops the Kafka clients."""
        while not stop.is_set():
            batch = await self._consumer.getmany(timeout_ms=500, max_records=200)
            if batch:
                await self.handle_batch(batch)

    async def handle_batch(self, batch: Mapping[TopicPartition, list[ConsumerRecord]]) -> None:
        for records in batch.values():
            for record in records:
                await self.handle(record)
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items() if records}
        await self.commit(offsets)
        for tp, offset in offsets.items():
            end = self._consumer.highwater(tp)
            if end is not None:
                LAG.labels(self.name, tp.topic, str(tp.partition)).set(max(end - offset, 0))

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        await self._consumer.commit(offsets)

    async def handle(self, record: ConsumerRecord) -> str:
        """Handles one record; returns its outcome (for metrics and tests)."""
        raw = RawRecord(
            record.topic,
            record.partition,
            record.offset,
            record.key,
            record.value,
            list(record.headers),
        )
        try:
            event = decode(raw.topic, raw.partition, raw.offset, raw.key, raw.value, raw.headers)
        except MalformedEvent as exc:
            return await self._park(raw, exc, attempts=1)
        handler = self._handlers.get(event.event_type)
        if handler is None:
            EVENTS.labels(self.name, "ignored").inc()
            return "ignored"  # another consumer's business
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_not_exception_type(PermanentError),
                stop=stop_after_attempt(self._retry.max_attempts),
                wait=wait_exponential(
                    multiplier=self._retry.initial_backoff_s, max=self._retry.max_backoff_s
                ),
            ):
                with attempt:
                    outcome = await self.apply(event, handler)
        except PermanentError as exc:
            return await self._park(raw, exc, attempts=1)
        except RetryError as exc:
            last = exc.last_attempt.exception() or exc
            log.warning(
                "giving up on %s after %d attempts", event.event_id, self._retry.max_attempts
            )
            return await self._park(raw, last, attempts=self._retry.max_attempts)
        EVENTS.labels(self.name, outcome).inc()
        return outcome

    def handler_for(self, event_type: str) -> Handler | None:
        return self._handlers.get(event_type)

    async def apply(self, event: Event, handler: Handler) -> str:
        """The effect and its processed-events record in one transaction: "processed", or
        "duplicate" when the event id was recorded before.

        Runs in a span continuing the producer's trace (the `traceparent` header), so the
        events the handler writes to its outbox carry the same trace onward."""
        with tracer.start_as_current_span(
            f"{event.event_type} process",
            context=extract(event.headers),
            kind=trace.SpanKind.CONSUMER,
            attributes={
                "messaging.system": "kafka",
                "messaging.destination.name": event.topic,
                "messaging.message.id": event.event_id,
                "messaging.consumer.group.name": self.name,
            },
        ):
            async with self._engine.begin() as conn:
                first = await conn.execute(
                    mysql_insert(processed_events)
                    .values(consumer=self.name, event_id=event.event_id, processed_at=self._clock())
                    .prefix_with("IGNORE")
                )
                if first.rowcount == 0:
                    return "duplicate"  # effect committed before; nothing to do
                await handler(conn, event)
        return "processed"

    async def _park(self, raw: RawRecord, error: BaseException, attempts: int) -> str:
        where = await self._dead_letters.put(raw, error, attempts)
        EVENTS.labels(self.name, f"parked_{where}").inc()
        return f"parked_{where}"
