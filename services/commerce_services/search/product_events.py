"""Where the sync learns about catalog changes: the product service's `product_changed` events,
relayed from its outbox by Debezium to `commerce.product.events` (keyed by product id, so one
product's events keep their order within a partition).

The worker reads the topic without a consumer group: its position (the next offset of every
partition) is part of the index version's checkpoint, saved next to the index after the
documents of the events before it were written, so a new index version, a rebuild or a copy
by the operator starts from a position of its own. A position older than what the topic still
holds (its retention passed) cannot be replayed: `EventsGone`, and the index is loaded from the
catalog again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import OffsetOutOfRangeError

from commerce_services.events.envelope import MalformedEvent, decode
from commerce_services.product.catalog.events import (
    PRODUCT_CHANGED,
    MalformedChange,
    ProductChanged,
)

log = logging.getLogger(__name__)

# partition -> the offset of the next event to read
Position = Mapping[int, int]

# How a position reads inside a checkpoint (contracts.Checkpoint.revision_id): a watermark
# checkpoint of the poll this replaced, or START, has no such prefix.
_PREFIX = "events:"


class EventsGone(Exception):
    """The events after the position were deleted by the topic's retention."""


class TopicMissing(Exception):
    """The topic does not exist yet (it comes with the product service's OutboxConnector)."""


def encode_position(position: Position) -> str:
    return _PREFIX + ",".join(f"{p}={o}" for p, o in sorted(position.items()))


def decode_position(text: str) -> Position | None:
    """The position a checkpoint holds; None when it holds none (START, or a checkpoint of the
    watermark poll this replaced): the index must be loaded from the catalog first."""
    if not text.startswith(_PREFIX):
        return None
    body = text.removeprefix(_PREFIX)
    position: dict[int, int] = {}
    for part in body.split(",") if body else ():
        partition, _, offset = part.partition("=")
        if not (partition.isdigit() and offset.isdigit()):
            return None
        position[int(partition)] = int(offset)
    return position


@dataclass(frozen=True)
class EventBatch:
    changes: list[ProductChanged]
    position: dict[int, int]  # after these events


class ProductEvents:
    """A reader of the product events topic at a position (one per worker process)."""

    def __init__(self, bootstrap_servers: str, topic: str) -> None:
        self.topic = topic
        self._bootstrap_servers = bootstrap_servers
        self._client: AIOKafkaConsumer | None = None
        self._started = False
        self._partitions: list[TopicPartition] = []
        self._wanted: Position | None = None  # a seek not applied yet

    @property
    def _consumer(self) -> AIOKafkaConsumer:
        if self._client is None:  # made inside the event loop, as aiokafka wants
            self._client = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap_servers,
                group_id=None,
                enable_auto_commit=False,
                # Never skip silently: a position past the retention is the sync's to handle.
                auto_offset_reset="none",
            )
        return self._client

    async def close(self) -> None:
        if self._client is not None:
            await self._client.stop()

    async def _ready(self) -> list[TopicPartition]:
        """Connects and assigns every partition of the topic; the topic comes with the
        product service's OutboxConnector, so until it exists the caller retries."""
        if not self._started:
            await self._consumer.start()
            self._started = True
        if not self._partitions:
            partitions = await self._partition_ids()
            self._partitions = [TopicPartition(self.topic, p) for p in partitions]
            self._consumer.assign(self._partitions)
        return self._partitions

    async def _partition_ids(self) -> list[int]:
        # The consumer learns a topic's partitions only once it reads it; the admin client
        # asks the cluster.
        admin = AIOKafkaAdminClient(bootstrap_servers=self._bootstrap_servers)
        await admin.start()
        try:
            [found] = await admin.describe_topics([self.topic])
        finally:
            await admin.close()
        if found.get("error_code") or not found.get("partitions"):
            raise TopicMissing(f"topic {self.topic} does not exist yet")
        return sorted(int(p["partition"]) for p in found["partitions"])

    async def end(self) -> dict[int, int]:
        """The position after every event written so far (none while there is no topic)."""
        try:
            partitions = await self._ready()
        except TopicMissing:
            return {}
        ends = await self._consumer.end_offsets(partitions)
        return {tp.partition: int(ends[tp]) for tp in partitions}

    async def seek(self, position: Position) -> None:
        """Reads from `position` on; partitions it does not name from their beginning. Takes
        effect at the next read (the topic may not exist yet)."""
        self._wanted = dict(position)

    async def read(self, max_events: int, wait_s: float) -> EventBatch:
        """The next events (waiting up to `wait_s` for one), at most `max_events`."""
        partitions = await self._ready()
        if self._wanted is not None:
            wanted, self._wanted = self._wanted, None
            for tp in partitions:
                if tp.partition in wanted:
                    self._consumer.seek(tp, wanted[tp.partition])
            unnamed = [tp for tp in partitions if tp.partition not in wanted]
            if unnamed:
                await self._consumer.seek_to_beginning(*unnamed)
        try:
            records = await self._consumer.getmany(
                *partitions, timeout_ms=int(wait_s * 1000), max_records=max_events
            )
        except OffsetOutOfRangeError as exc:
            raise EventsGone(str(exc)) from exc
        changes = []
        for batch in records.values():
            for record in batch:
                change = _change(record)
                if change is not None:
                    changes.append(change)
        positions = await asyncio.gather(*(self._consumer.position(tp) for tp in partitions))
        return EventBatch(
            changes, {tp.partition: int(o) for tp, o in zip(partitions, positions, strict=True)}
        )


def _change(record: ConsumerRecord) -> ProductChanged | None:
    """The product change a record carries; None for another event type or a malformed one
    (logged: no retry can mend it, and its product's next change carries the state)."""
    where = f"{record.topic}:{record.partition}@{record.offset}"
    try:
        event = decode(
            record.topic,
            record.partition,
            record.offset,
            record.key,
            record.value,
            list(record.headers),
        )
        if event.event_type != PRODUCT_CHANGED:
            return None
        return ProductChanged.of(event.payload)
    except (MalformedEvent, MalformedChange) as exc:
        log.error("skipping the malformed event at %s: %s", where, exc)
        return None
