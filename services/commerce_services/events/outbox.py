"""The transactional outbox: an event is a row written in the same transaction as the change
it announces, in the column layout Debezium's outbox EventRouter reads. Services never publish
domain events to Kafka themselves; Debezium relays committed rows, so an event exists if and
only if its change was committed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from opentelemetry.propagate import inject
from sqlalchemy import CHAR, Column, MetaData, String, Table, delete, insert, select
from sqlalchemy.dialects.mysql import DATETIME, LONGTEXT
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from commerce_services.events.settings import OutboxSettings
from commerce_services.runtime.clock import utc_now
from commerce_services.runtime.periodic import every


def outbox_table(metadata: MetaData, name: str = "outbox") -> Table:
    return Table(
        name,
        metadata,
        Column("id", CHAR(36), primary_key=True),  # the event id consumers de-duplicate by
        Column("aggregatetype", String(64), nullable=False),  # routes to commerce.<type>.events
        Column("aggregateid", String(64), nullable=False),  # the Kafka key: per-aggregate order
        Column("type", String(64), nullable=False),
        Column("payload", LONGTEXT, nullable=False),
        Column("traceparent", String(55), nullable=True),  # W3C trace context, a Kafka header
        Column("created_at", DATETIME(fsp=6), nullable=False),
    )


@dataclass(frozen=True)
class OutboxEvent:
    aggregate_type: str
    aggregate_id: str
    event_type: str
    payload: dict[str, Any]


def _json_default(value: object) -> str:
    if isinstance(value, Decimal | datetime | uuid.UUID):
        return str(value)  # money travels as a decimal string, never a float
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _reject_floats(value: float) -> None:
    raise TypeError("floats are not allowed in event payloads (use Decimal for money)")


def encode_payload(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, default=_json_default, separators=(",", ":"))
    json.loads(text, parse_float=_reject_floats)  # type: ignore[arg-type]
    return text


def current_traceparent() -> str | None:
    """The current trace as a W3C `traceparent`, so the saga continues it across Kafka."""
    carrier: dict[str, str] = {}
    inject(carrier)
    return carrier.get("traceparent")


class Outbox:
    def __init__(self, table: Table) -> None:
        self.table = table
        # Built once, values passed apart: SQLAlchemy builds no statement per event.
        self._insert = insert(table)

    async def append(
        self,
        conn: AsyncConnection,
        event: OutboxEvent,
        now: datetime,
        event_id: str | None = None,
    ) -> str:
        """Adds the event to the caller's transaction, in the current trace; returns its id."""
        event_id = event_id or str(uuid.uuid4())
        await conn.execute(self._insert, self._row(event, event_id, current_traceparent(), now))
        return event_id

    async def append_all(
        self,
        conn: AsyncConnection,
        events: Sequence[tuple[OutboxEvent, str | None]],
        now: datetime,
    ) -> None:
        """Adds the events, each with the trace it belongs to, in one statement of the
        caller's transaction (several requests' events written together)."""
        await conn.execute(
            self._insert,
            [self._row(event, str(uuid.uuid4()), trace, now) for event, trace in events],
        )

    def _row(
        self, event: OutboxEvent, event_id: str, traceparent: str | None, now: datetime
    ) -> dict[str, object]:
        return {
            "id": event_id,
            "aggregatetype": event.aggregate_type,
            "aggregateid": event.aggregate_id,
            "type": event.event_type,
            "payload": encode_payload(event.payload),
            "traceparent": traceparent,
            "created_at": now,
        }

    async def purge(self, engine: AsyncEngine, older_than: datetime, batch: int = 1000) -> int:
        """Deletes captured rows (Debezium reads the binlog, not the table); returns how many.

        Only rows older than `older_than` go, so the connector has long read them even after a
        pause; small batches keep each transaction short."""
        removed = 0
        while True:
            async with engine.begin() as conn:
                ids = [
                    row.id
                    for row in await conn.execute(
                        select(self.table.c.id)
                        .where(self.table.c.created_at < older_than)
                        .limit(batch)
                    )
                ]
                if not ids:
                    return removed
                await conn.execute(delete(self.table).where(self.table.c.id.in_(ids)))
            removed += len(ids)


def purge_job(
    outbox: Outbox, engine: AsyncEngine, settings: OutboxSettings
) -> Callable[[], Coroutine[Any, Any, None]]:
    """The background job of a service with an outbox: purges captured rows older than the
    retention, every purge interval."""

    async def purge_once() -> int:
        return await outbox.purge(
            engine, utc_now() - timedelta(seconds=settings.outbox_retention_s)
        )

    async def purge_outbox() -> None:
        await every(settings.outbox_purge_interval_s, "outbox purge", purge_once)

    return purge_outbox
