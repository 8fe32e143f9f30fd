"""The idempotent event consumer against real Kafka and MariaDB, with the product service's
order-event handlers: duplicates, poison messages, a crash between effect and offset commit,
a dead-letter topic that refuses, transient failures, a database outage, and a fetch's events
sharing one transaction (rolled back whole and handled one by one when one fails)."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from prometheus_client import REGISTRY
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_devstack.endpoints import Endpoints
from commerce_services.db.engine import service_engine
from commerce_services.db.unit_of_work import UnitOfWork
from commerce_services.events.consumer import EventConsumer, Handler, RetryPolicy, Together
from commerce_services.events.dead_letters import DeadLetters, RawRecord
from commerce_services.events.envelope import Event, PermanentError
from commerce_services.events.replay import replay_dlq_record
from commerce_services.events.retry_worker import FailedEventRetrier, requeue_failed
from commerce_services.events.tables import failed_events, processed_events
from commerce_services.product.inventory.store import InventoryStore
from commerce_services.product.order_events import order_event_handlers, order_events_together
from commerce_services.product.settings import ProductSettings
from commerce_services.runtime.clock import utc_now
from tests.stack.access_tokens import AUTH_SETTINGS
from tests.stack.conftest import TTL, Clock
from tests.stack.outage import cuttable_proxy

FAST = RetryPolicy(max_attempts=3, initial_backoff_s=0.01, max_backoff_s=0.05)


@dataclass
class Kafka:
    bootstrap: str
    topic: str
    producer: AIOKafkaProducer

    async def send(
        self, key: str, event_type: str | None, payload: object, event_id: str | None = None
    ) -> str:
        event_id = event_id or str(uuid.uuid4())
        headers = [("id", json.dumps(event_id).encode())]
        if event_type:
            headers.append(("eventType", json.dumps(event_type).encode()))
        await self.producer.send_and_wait(
            self.topic, key=key.encode(), value=json.dumps(payload).encode(), headers=headers
        )
        return event_id


@pytest.fixture
async def kafka(stack: Endpoints, unique: str) -> AsyncIterator[Kafka]:
    bootstrap = stack["kafka"]["bootstrap_servers"]
    topic = f"test.order.events.{unique}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1), NewTopic(f"{topic}.dlq", 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    yield Kafka(bootstrap, topic, producer)
    await producer.stop()


def _kafka_consumer(kafka: Kafka, group: str) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        kafka.topic,
        bootstrap_servers=kafka.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )


class Harness:
    """One consumer process: an EventConsumer on its own Kafka clients."""

    def __init__(
        self,
        kafka: Kafka,
        engine: AsyncEngine,
        handlers: Mapping[str, Handler],
        group: str,
        name: str,
        consumer_class: type[EventConsumer] = EventConsumer,
        together: Together | None = None,
    ) -> None:
        self.kafka_consumer = _kafka_consumer(kafka, group)
        self.dead_letters = DeadLetters(
            name, kafka.producer, engine, utc_now, publish_timeout_s=3.0
        )
        self.consumer = consumer_class(
            name,
            self.kafka_consumer,
            engine,
            handlers,
            self.dead_letters,
            utc_now,
            FAST,
            together,
        )

    async def __aenter__(self) -> Harness:
        await self.kafka_consumer.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.kafka_consumer.stop()

    async def drain(self, expected: int) -> list[str]:
        """Handles batches until `expected` records were seen; returns their outcomes."""
        outcomes: list[str] = []
        async with asyncio.timeout(60):
            while len(outcomes) < expected:
                batch = await self.kafka_consumer.getmany(timeout_ms=500)
                for records in batch.values():
                    for record in records:
                        outcomes.append(await self.consumer.handle(record))
                if batch:
                    await self.consumer.commit(
                        {tp: recs[-1].offset + 1 for tp, recs in batch.items() if recs}
                    )
        return outcomes


@pytest.fixture
async def reserved(store: InventoryStore, sku: str) -> str:
    await store.set_stock(sku, 10)
    order_id = f"ord-{sku}"
    await store.reserve(order_id, [(sku, 4)], TTL)
    return order_id


async def _level(store: InventoryStore, sku: str) -> tuple[int, int]:
    level = await store.stock_level(sku)
    assert level is not None
    return level.stock, level.reserved


async def test_redelivery_from_offset_zero_changes_nothing_twice(
    kafka: Kafka,
    engine: AsyncEngine,
    store: InventoryStore,
    sku: str,
    reserved: str,
    unique: str,
) -> None:
    handlers = order_event_handlers(store)
    await kafka.send(reserved, "order_completed", {"order_id": reserved})
    first = Harness(kafka, engine, handlers, f"g1-{unique}", f"product-{unique}")
    async with first:
        assert await first.drain(1) == ["processed"]
    assert await _level(store, sku) == (6, 0)

    # A new group reads the topic from offset 0: the same events arrive again.
    again = Harness(kafka, engine, handlers, f"g2-{unique}", f"product-{unique}")
    async with again:
        assert await again.drain(1) == ["duplicate"]
    assert await _level(store, sku) == (6, 0)


async def test_poison_messages_are_dead_lettered_and_the_partition_moves_on(
    kafka: Kafka,
    engine: AsyncEngine,
    store: InventoryStore,
    sku: str,
    reserved: str,
    unique: str,
) -> None:
    handlers = order_event_handlers(store)
    malformed = await kafka.send(reserved, None, {"order_id": reserved})  # no eventType header
    unknown = await kafka.send("ghost", "order_completed", {"order_id": f"ghost-{unique}"})
    good = await kafka.send(reserved, "order_cancelled", {"order_id": reserved})
    harness = Harness(kafka, engine, handlers, f"g-{unique}", f"product-{unique}")
    async with harness:
        outcomes = await harness.drain(3)
    assert outcomes == ["parked_dlq", "parked_dlq", "processed"]
    assert await _level(store, sku) == (10, 0)  # the later message still took effect

    dlq = AIOKafkaConsumer(
        f"{kafka.topic}.dlq",
        bootstrap_servers=kafka.bootstrap,
        group_id=f"dlq-{unique}",
        auto_offset_reset="earliest",
    )
    await dlq.start()
    try:
        parked: list[ConsumerRecord] = []
        async with asyncio.timeout(30):
            while len(parked) < 2:
                for records in (await dlq.getmany(timeout_ms=500)).values():
                    parked += records
    finally:
        await dlq.stop()
    headers = [{k: v.decode() for k, v in r.headers} for r in parked]
    assert [json.loads(h["id"]) for h in headers] == [malformed, unknown]
    assert "MalformedEvent" in headers[0]["dlq-error"]
    assert "PermanentError" in headers[1]["dlq-error"]
    assert {h["dlq-original-topic"] for h in headers} == {kafka.topic}
    assert good not in [json.loads(h["id"]) for h in headers]


class _Crash(Exception):
    pass


class _DiesBeforeOffsetCommit(EventConsumer):
    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        raise _Crash  # the process dies after the effect committed, before the offset did


async def _consume_until_crash(harness: Harness) -> None:
    async with asyncio.timeout(60):
        while True:
            batch = await harness.kafka_consumer.getmany(timeout_ms=500)
            if batch:
                await harness.consumer.handle_batch(batch)


async def test_crash_after_effect_before_offset_commit_does_not_double_the_effect(
    kafka: Kafka,
    engine: AsyncEngine,
    store: InventoryStore,
    sku: str,
    reserved: str,
    unique: str,
) -> None:
    handlers = order_event_handlers(store)
    await kafka.send(reserved, "order_completed", {"order_id": reserved})
    crashing = Harness(
        kafka,
        engine,
        handlers,
        f"g-{unique}",
        f"product-{unique}",
        consumer_class=_DiesBeforeOffsetCommit,
    )
    async with crashing:
        with pytest.raises(_Crash):
            await _consume_until_crash(crashing)
    assert await _level(store, sku) == (6, 0)

    restarted = Harness(kafka, engine, handlers, f"g-{unique}", f"product-{unique}")
    async with restarted:
        assert await restarted.drain(1) == ["duplicate"]  # redelivered, not re-applied
    assert await _level(store, sku) == (6, 0)


async def test_when_the_dlq_refuses_the_event_lands_in_failed_events(
    kafka: Kafka, engine: AsyncEngine, store: InventoryStore, unique: str
) -> None:
    await kafka.send("x", None, {})  # malformed: goes to the dead letters
    harness = Harness(
        kafka, engine, order_event_handlers(store), f"g-{unique}", f"product-{unique}"
    )
    original = kafka.topic
    async with harness:
        batch: dict[TopicPartition, list[ConsumerRecord]] = {}
        async with asyncio.timeout(30):
            while not batch:
                batch = await harness.kafka_consumer.getmany(timeout_ms=500)
        record = next(iter(batch.values()))[0]
        # Pretend it came from a topic whose DLQ does not exist: the broker refuses unknown
        # topics here, so publishing to the DLQ fails.
        record.topic = f"{original}-no-such"
        assert await harness.consumer.handle(record) == "parked_failed_events"
        assert await harness.consumer.handle(record) == "parked_failed_events"  # redelivery
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(
                    failed_events.c.status, failed_events.c.error, failed_events.c.record_headers
                ).where(failed_events.c.consumer == f"product-{unique}")
            )
        ).all()
    assert len(rows) == 1  # parked once, not once per delivery
    assert rows[0].status == "PENDING"
    assert "MalformedEvent" in rows[0].error


async def test_transient_failures_are_retried_then_applied_once(
    kafka: Kafka, engine: AsyncEngine, unique: str
) -> None:
    calls: list[str] = []

    async def flaky(unit: UnitOfWork, event: Event) -> None:
        calls.append(event.event_id)
        if len(calls) < 3:
            raise ConnectionError("database blip")

    event_id = await kafka.send("k", "order_completed", {"order_id": "k"})
    harness = Harness(kafka, engine, {"order_completed": flaky}, f"g-{unique}", f"flaky-{unique}")
    async with harness:
        assert await harness.drain(1) == ["processed"]
    assert calls == [event_id] * 3


async def test_a_database_outage_holds_the_event_until_the_database_is_back(
    kafka: Kafka,
    stack: Endpoints,
    store: InventoryStore,
    sku: str,
    reserved: str,
    unique: str,
) -> None:
    """Issue 13, defect 2: an order_completed met a restarting database, was dead-lettered
    after a few retries, and the paid unit was later sold again. An outage is waited out."""
    settings = ProductSettings.from_values({**stack.service_settings("product"), **AUTH_SETTINGS})
    async with cuttable_proxy(settings.db_host, settings.db_port) as proxy:
        proxied = service_engine(
            settings.model_copy(update={"db_host": "127.0.0.1", "db_port": proxy.port})
        )
        name = f"product-{unique}"
        harness = Harness(
            kafka, proxied, order_event_handlers(InventoryStore(proxied)), f"g-{unique}", name
        )
        try:
            await kafka.send(reserved, "order_completed", {"order_id": reserved})
            proxy.cut()
            async with harness:
                drained = asyncio.create_task(harness.drain(1))
                await asyncio.sleep(3)  # far longer than FAST's retries of other failures
                assert not drained.done()
                assert (
                    REGISTRY.get_sample_value("commerce_consumer_stalled", {"consumer": name}) == 1
                )
                proxy.restore()
                assert await drained == ["processed"]
            assert REGISTRY.get_sample_value("commerce_consumer_stalled", {"consumer": name}) == 0
        finally:
            await proxied.dispose()
    assert await _level(store, sku) == (6, 0)  # sold once
    assert await _end_offset(kafka.bootstrap, f"{kafka.topic}.dlq") == 0  # nothing parked


def _stalled(consumer: str) -> float | None:
    return REGISTRY.get_sample_value("commerce_consumer_stalled", {"consumer": consumer})


async def _end_offset(bootstrap: str, topic: str) -> int:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        return int((await consumer.end_offsets([partition]))[partition])
    finally:
        await consumer.stop()


async def test_retry_worker_redrives_parked_events_then_gives_up(
    kafka: Kafka, engine: AsyncEngine, unique: str
) -> None:
    outcomes: dict[str, list[str]] = {"ok-later": [], "never": []}

    async def handler(unit: UnitOfWork, event: Event) -> None:
        outcomes[event.key].append(event.event_id)
        if event.key == "never" or len(outcomes["ok-later"]) < 2:
            raise ConnectionError("still down")

    name = f"retry-{unique}"
    harness = Harness(kafka, engine, {"order_completed": handler}, f"g-{unique}", name)
    clock = Clock()
    for key in ("ok-later", "never"):
        raw = RawRecord(
            kafka.topic,
            0,
            1000 + len(key),
            key.encode(),
            b'{"order_id": "x"}',
            [("id", f'"{key}-{unique}"'.encode()), ("eventType", b'"order_completed"')],
        )
        await harness.dead_letters.store_failed(raw, "parked by the test", attempts=3)
    retrier = FailedEventRetrier(harness.consumer, engine, clock)

    statuses: list[dict[int, str]] = []
    for _ in range(6):
        clock.now += timedelta(hours=2)  # past any backoff
        statuses.append(await retrier.run_once())
    ok_id, never_id = sorted(statuses[0])
    assert [s.get(ok_id) for s in statuses[:3]] == ["PENDING", "RESOLVED", None]
    assert [s.get(never_id) for s in statuses] == ["PENDING"] * 4 + ["FAILED", None]
    assert len(outcomes["ok-later"]) == 2  # resolved once, then left alone

    assert await requeue_failed(engine, name, never_id, clock.now) is True
    assert (await retrier.run_once()) == {never_id: "PENDING"}
    assert await requeue_failed(engine, name, ok_id, clock.now) is False  # already resolved


async def test_a_dead_lettered_record_can_be_replayed_to_its_topic(
    kafka: Kafka, engine: AsyncEngine, unique: str
) -> None:
    fixed = False
    applied: list[str] = []

    async def handler(unit: UnitOfWork, event: Event) -> None:
        if not fixed:
            raise PermanentError("bug in the handler")
        applied.append(event.event_id)

    event_id = await kafka.send("k", "order_completed", {"order_id": "k"})
    harness = Harness(kafka, engine, {"order_completed": handler}, f"g-{unique}", f"r-{unique}")
    async with harness:
        assert await harness.drain(1) == ["parked_dlq"]
        fixed = True  # the bug is fixed and deployed; now replay what was parked
        topic = await replay_dlq_record(kafka.bootstrap, f"{kafka.topic}.dlq", 0, 0)
        assert topic == kafka.topic
        assert await harness.drain(1) == ["processed"]
    assert applied == [event_id]


async def _fetch(harness: Harness, records: int) -> dict[TopicPartition, list[ConsumerRecord]]:
    """One fetch holding `records` records (the topic has one partition)."""
    async with asyncio.timeout(30):
        while True:
            batch: dict[
                TopicPartition, list[ConsumerRecord]
            ] = await harness.kafka_consumer.getmany(timeout_ms=500)
            if sum(len(r) for r in batch.values()) >= records:
                return batch
            harness.kafka_consumer.seek_to_beginning()  # a partial fetch: read it all again


def _handled(name: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "commerce_events_total", {"consumer": name, "outcome": outcome}
    )
    return value or 0.0


def _shared(name: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "commerce_consumer_shared_transactions_total", {"consumer": name, "outcome": outcome}
    )
    return value or 0.0


async def _reservations(store: InventoryStore, unique: str, count: int) -> list[str]:
    order_ids = []
    for n in range(count):
        sku = f"SKU-{unique}-{n}"
        await store.set_stock(sku, 10)
        await store.reserve(f"ord-{sku}", [(sku, 4)], TTL)
        order_ids.append(f"ord-{sku}")
    return order_ids


TOGETHER = [False, True]
TOGETHER_IDS = ["handlers in turn", "together"]


@pytest.mark.parametrize("together", TOGETHER, ids=TOGETHER_IDS)
async def test_a_fetch_of_events_shares_one_transaction_and_applies_each_once_also_redelivered(
    kafka: Kafka, engine: AsyncEngine, store: InventoryStore, unique: str, together: bool
) -> None:
    orders = await _reservations(store, unique, 4)
    first = await kafka.send(orders[0], "order_completed", {"order_id": orders[0]})
    for order_id in orders[1:3]:
        await kafka.send(order_id, "order_completed", {"order_id": order_id})
    await kafka.send(orders[3], "order_cancelled", {"order_id": orders[3]})
    await kafka.send(orders[0], "order_completed", {"order_id": orders[0]}, event_id=first)
    await kafka.send(orders[1], "order_created", {"order_id": orders[1]})  # not the product's
    name = f"product-{unique}"
    harness = Harness(
        kafka,
        engine,
        order_event_handlers(store),
        f"g-{unique}",
        name,
        together=order_events_together(store) if together else None,
    )
    async with harness:
        await harness.consumer.handle_batch(await _fetch(harness, 6))
    assert (_shared(name, "committed"), _shared(name, "rolled_back")) == (1.0, 0.0)
    again = Harness(
        kafka,
        engine,
        order_event_handlers(store),
        f"g-again-{unique}",  # reads the topic from its start: every event recorded before
        name,
        together=order_events_together(store) if together else None,
    )
    async with again:
        await again.consumer.handle_batch(await _fetch(again, 6))
    assert (_shared(name, "committed"), _shared(name, "rolled_back")) == (2.0, 0.0)
    # Four distinct events of the product's, each applied once; every later copy a duplicate.
    assert (_handled(name, "processed"), _handled(name, "duplicate")) == (4.0, 1.0 + 5.0)
    for order_id in orders[:3]:
        assert await _level(store, order_id.removeprefix("ord-")) == (6, 0)  # sold once
    assert await _level(store, orders[3].removeprefix("ord-")) == (10, 0)  # given back
    async with engine.connect() as conn:
        recorded = await conn.scalar(
            select(func.count()).where(processed_events.c.consumer == name)
        )
    assert recorded == 4


@pytest.mark.parametrize("together", TOGETHER, ids=TOGETHER_IDS)
async def test_a_failing_event_rolls_the_shared_transaction_back_and_each_goes_alone(
    kafka: Kafka, engine: AsyncEngine, store: InventoryStore, unique: str, together: bool
) -> None:
    orders = await _reservations(store, unique, 2)
    await kafka.send(orders[0], "order_completed", {"order_id": orders[0]})
    await kafka.send("ghost", "order_completed", {"order_id": f"ghost-{unique}"})  # permanent
    await kafka.send(orders[1], "order_cancelled", {"order_id": orders[1]})
    name = f"product-{unique}"
    harness = Harness(
        kafka,
        engine,
        order_event_handlers(store),
        f"g-{unique}",
        name,
        together=order_events_together(store) if together else None,
    )
    async with harness:
        await harness.consumer.handle_batch(await _fetch(harness, 3))
    assert (_shared(name, "committed"), _shared(name, "rolled_back")) == (0.0, 1.0)
    assert await _level(store, orders[0].removeprefix("ord-")) == (6, 0)  # confirmed once
    assert await _level(store, orders[1].removeprefix("ord-")) == (10, 0)  # released once
    async with engine.connect() as conn:
        parked = await conn.scalar(select(func.count()).where(processed_events.c.consumer == name))
    assert parked == 2  # the two that applied; the ghost went to the dead letters
