"""An idempotent Kafka consumer that commits offsets only after the effect is committed.

For each record, in order per partition (the partitions of a batch side by side):
1. decode it; a malformed record is dead-lettered at once;
2. in ONE database transaction: insert (consumer, event id) into processed_events, and run the
   handler for its type on the same connection; a duplicate id means already done, a no-op.
   The records a fetch brought for one partition share that transaction (one commit for many
   events under load, `apply_together`): their handlers run in turn, or, for a consumer whose
   handlers lock rows of several aggregates (in event order they would deadlock with other
   writers), one `together` handler takes them all and locks in a global order. If anything
   in it fails, it is rolled back whole and its records go through steps 2-3 one by one, so
   failures are handled per event;
3. an outage (a database unreachable or restarting, see db/outages.py) is retried with capped
   backoff for as long as it lasts, holding the partition: the event is not dead-lettered,
   the lag grows and `commerce_consumer_stalled` says so. Any other failure is retried up to
   `max_attempts`, and a PermanentError not at all, then dead-lettered (DLQ topic, else
   failed_events), so a poison message never stops its partition;
4. commit the offsets of the batch only after every record of it was handled or parked.
A crash anywhere before 4 redelivers the batch, and step 2 makes the redelivery harmless. A
commit refused because a long outage cost the consumer its group membership is not an error:
the batch comes again and is recognised as done.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError
from opentelemetry import trace
from opentelemetry.propagate import extract
from prometheus_client import Counter, Gauge
from sqlalchemy.dialects.mysql import insert as mysql_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_services.db.outages import is_outage
from commerce_services.db.unit_of_work import UnitOfWork, UnitsOfWork
from commerce_services.events.dead_letters import DeadLetters, RawRecord
from commerce_services.events.envelope import Event, MalformedEvent, PermanentError, decode
from commerce_services.events.tables import processed_events

log = logging.getLogger(__name__)
tracer = trace.get_tracer(__name__)

# A handler runs in the consumer's unit of work, next to the processed-events record.
Handler = Callable[[UnitOfWork, Event], Awaitable[None]]
# The effects of several events (of the handlers' types, in order) in one unit of work.
Together = Callable[[UnitOfWork, Sequence[Event]], Awaitable[None]]

# Outcomes include parked_dlq and parked_failed_events: the dead-letter counts.
EVENTS = Counter("commerce_events_total", "Events handled by outcome", ["consumer", "outcome"])
LAG = Gauge(
    "commerce_consumer_lag",
    "Records behind the partition's end after the last committed batch, or behind the record "
    "the consumer is stalled on",
    ["consumer", "topic", "partition"],
)
STALLED = Gauge(
    "commerce_consumer_stalled",
    "1 while the consumer holds its partition because a database is unavailable",
    ["consumer"],
)
TOGETHER = Counter(
    "commerce_consumer_shared_transactions_total",
    "Transactions shared by a partition's fetched events: committed, or rolled back and the "
    "events handled one by one",
    ["consumer", "outcome"],
)
# Events of one partition in one transaction at most: a longer one holds its row locks longer.
MAX_TOGETHER = 64
OUTAGE_RETRIES = Counter(
    "commerce_consumer_outage_retries_total",
    "Attempts at an event that failed because a database was unavailable",
    ["consumer"],
)


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5  # for failures other than an outage
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 10.0

    def backoff_s(self, attempt: int) -> float:
        """Wait after the `attempt`-th failure (1-based): doubling, capped, with jitter so
        consumers that met the same outage do not come back in step."""
        # The exponent is capped: a long outage counts thousands of attempts.
        ceiling = min(self.initial_backoff_s * 2 ** min(attempt - 1, 30), self.max_backoff_s)
        return float(ceiling * random.uniform(0.5, 1.0))


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
        together: Together | None = None,
    ) -> None:
        self.name = name
        self._together = together
        self._consumer = consumer
        self._units = UnitsOfWork(engine)
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
        """Each partition's records in order, the partitions side by side (Kafka orders only
        within a partition, and each aggregate's events share one), then one commit."""

        async def in_order(records: list[ConsumerRecord]) -> None:
            for start in range(0, len(records), MAX_TOGETHER):
                chunk = records[start : start + MAX_TOGETHER]
                if not await self.handle_together(chunk):
                    for record in chunk:
                        await self.handle(record)

        # A TaskGroup, not gather: if one partition fails, the others stop before the batch is
        # redelivered, so no partition is ever handled by two tasks at once.
        async with asyncio.TaskGroup() as group:
            for records in batch.values():
                group.create_task(in_order(records))
        offsets = {tp: records[-1].offset + 1 for tp, records in batch.items() if records}
        try:
            await self.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            log.warning("offsets not committed (%s); the batch will be redelivered", exc)
            return
        for tp, offset in offsets.items():
            self._report_lag(tp, offset)

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        await self._consumer.commit(offsets)

    def _report_lag(self, tp: TopicPartition, position: int) -> None:
        end = self._consumer.highwater(tp)
        if end is not None:
            LAG.labels(self.name, tp.topic, str(tp.partition)).set(max(end - position, 0))

    async def handle(self, record: ConsumerRecord) -> str:
        """Handles one record; returns its outcome (for metrics and tests). Returns only once
        the record was applied, found done, ignored or parked: during an outage, that is when
        the database is back."""
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
        failures = 0
        outages = 0
        try:
            while True:
                try:
                    outcome = await self.apply(event, handler)
                    break
                except PermanentError as exc:
                    return await self._park(raw, exc, attempts=failures + 1)
                except Exception as exc:
                    if is_outage(exc):
                        outages += 1
                        self._stalled(record, event, exc, outages)
                        await asyncio.sleep(self._retry.backoff_s(outages))
                        continue
                    failures += 1
                    if failures >= self._retry.max_attempts:
                        log.warning("giving up on %s after %d attempts", event.event_id, failures)
                        return await self._park(raw, exc, attempts=failures)
                    await asyncio.sleep(self._retry.backoff_s(failures))
        finally:
            if outages:
                STALLED.labels(self.name).set(0)
        EVENTS.labels(self.name, outcome).inc()
        return outcome

    async def handle_together(self, records: Sequence[ConsumerRecord]) -> bool:
        """Handles one partition's records in one transaction; False, with nothing changed, when
        they must go one by one: fewer than two records to apply, a malformed one, or any
        failure."""
        events: list[Event] = []
        for record in records:
            try:
                events.append(
                    decode(
                        record.topic,
                        record.partition,
                        record.offset,
                        record.key,
                        record.value,
                        list(record.headers),
                    )
                )
            except MalformedEvent:
                return False
        applied = [e for e in events if e.event_type in self._handlers]
        if len(applied) < 2:
            return False
        try:
            outcomes = await self.apply_together(applied)
        except Exception as exc:
            TOGETHER.labels(self.name, "rolled_back").inc()
            log.info(
                "%d events handled one by one after a shared transaction failed: %r",
                len(applied),
                exc,
            )
            return False
        TOGETHER.labels(self.name, "committed").inc()
        for outcome in outcomes:
            EVENTS.labels(self.name, outcome).inc()
        for _ in range(len(events) - len(applied)):
            EVENTS.labels(self.name, "ignored").inc()
        return True

    async def apply_together(self, events: Sequence[Event]) -> list[str]:
        """The effects of `events` (in order, each with a handler) and their processed-events
        records in one transaction; each outcome as `apply` gives it. Raises, with nothing
        committed, if any of them fails."""
        now = self._clock()
        async with self._units.begin() as unit:
            # One statement records the batch and answers which ids were new: MariaDB's
            # INSERT IGNORE ... RETURNING returns only the rows it inserted (an id recorded
            # before, or twice in the batch, is not among them). A consumer recording one of
            # them concurrently holds its row lock until it ends, so it is seen either way.
            recorded = set(
                await unit.conn.scalars(
                    mysql_insert(processed_events)
                    .prefix_with("IGNORE")
                    .returning(processed_events.c.event_id),
                    [
                        {"consumer": self.name, "event_id": event_id, "processed_at": now}
                        for event_id in dict.fromkeys(e.event_id for e in events)
                    ],
                )
            )
            fresh: dict[str, Event] = {}
            for event in events:
                if event.event_id in recorded:
                    fresh.setdefault(event.event_id, event)  # a redelivered copy: once
            if self._together is not None and fresh:
                with self._batch_span(list(fresh.values())):
                    await self._together(unit, list(fresh.values()))
            outcomes = []
            for event in events:
                if fresh.get(event.event_id) is not event:
                    outcomes.append("duplicate")
                    continue
                if self._together is None:
                    with self._span(event):
                        await self._handlers[event.event_type](unit, event)
                outcomes.append("processed")
        return outcomes

    def _stalled(self, record: ConsumerRecord, event: Event, exc: Exception, outages: int) -> None:
        STALLED.labels(self.name).set(1)
        OUTAGE_RETRIES.labels(self.name).inc()
        self._report_lag(TopicPartition(record.topic, record.partition), record.offset)
        if outages == 1 or outages % 30 == 0:  # a line per half minute or so, not per attempt
            log.warning(
                "a database is unavailable; holding %s:%s at %s (%s), attempt %d: %s",
                record.topic,
                record.partition,
                record.offset,
                event.event_type,
                outages,
                exc,
            )

    def handler_for(self, event_type: str) -> Handler | None:
        return self._handlers.get(event_type)

    async def apply(self, event: Event, handler: Handler) -> str:
        """The effect and its processed-events record in one transaction: "processed", or
        "duplicate" when the event id was recorded before.

        Runs in a span continuing the producer's trace (the `traceparent` header), so the
        events the handler writes to its outbox carry the same trace onward."""
        with self._span(event):
            async with self._units.begin() as unit:
                first = await unit.conn.execute(
                    mysql_insert(processed_events)
                    .values(consumer=self.name, event_id=event.event_id, processed_at=self._clock())
                    .prefix_with("IGNORE")
                )
                if first.rowcount == 0:
                    return "duplicate"  # effect committed before; nothing to do
                await handler(unit, event)
        return "processed"

    @contextmanager
    def _span(self, event: Event) -> Iterator[None]:
        """The event's processing span, continuing the producer's trace (`traceparent`)."""
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
            yield

    @contextmanager
    def _batch_span(self, events: Sequence[Event]) -> Iterator[None]:
        """One span for events handled together, linked to each producer's trace."""
        links = [
            trace.Link(trace.get_current_span(extract(e.headers)).get_span_context())
            for e in events
        ]
        with tracer.start_as_current_span(
            f"{len(events)} events process",
            kind=trace.SpanKind.CONSUMER,
            links=[link for link in links if link.context.is_valid],
            attributes={
                "messaging.system": "kafka",
                "messaging.batch.message_count": len(events),
                "messaging.consumer.group.name": self.name,
            },
        ):
            yield

    async def _park(self, raw: RawRecord, error: BaseException, attempts: int) -> str:
        where = await self._dead_letters.put(raw, error, attempts)
        EVENTS.labels(self.name, f"parked_{where}").inc()
        return f"parked_{where}"
