"""Re-drives events parked in failed_events: up to MAX_RETRIES attempts with exponential
backoff, through the same idempotent path as the consumer, then marked FAILED for a person."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Coroutine
from datetime import datetime, timedelta
from typing import Any

from prometheus_client import Counter
from sqlalchemy import Row, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from commerce_services.db.settings import DatabaseSettings
from commerce_services.events.consumer import EventConsumer
from commerce_services.events.envelope import PermanentError, decode
from commerce_services.events.tables import failed_events
from commerce_services.runtime.clock import utc_now

log = logging.getLogger(__name__)

RETRIES = Counter(
    "commerce_failed_event_retries_total",
    "Re-drives of parked events by result",
    ["consumer", "status"],
)

MAX_RETRIES = 5


def backoff(retries: int) -> timedelta:
    return timedelta(seconds=min(30 * 2 ** (retries - 1), 3600))


class FailedEventRetrier:
    def __init__(
        self, consumer: EventConsumer, engine: AsyncEngine, clock: Callable[[], datetime]
    ) -> None:
        self._consumer = consumer
        self._engine = engine
        self._clock = clock

    async def run_once(self, limit: int = 50) -> dict[int, str]:
        """Retries the due rows of this consumer; returns {row id: new status}."""
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(failed_events)
                    .where(
                        failed_events.c.consumer == self._consumer.name,
                        failed_events.c.status == "PENDING",
                        failed_events.c.next_attempt_at <= self._clock(),
                    )
                    .order_by(failed_events.c.next_attempt_at)
                    .limit(limit)
                )
            ).all()
        results = {}
        for row in rows:
            results[row.id] = await self._retry(row)
            RETRIES.labels(self._consumer.name, results[row.id]).inc()
        return results

    async def _retry(self, row: Row[Any, Any]) -> str:
        record_id: int = row.id
        retries = row.attempts + 1
        try:
            headers = [
                (k, None if v is None else v.encode()) for k, v in json.loads(row.record_headers)
            ]
            value = row.record_value.encode() if row.record_value is not None else None
            key = row.record_key.encode() if row.record_key else None
            event = decode(row.topic, row.kafka_partition, row.kafka_offset, key, value, headers)
            handler = self._consumer.handler_for(event.event_type)
            if handler is None:
                raise PermanentError(f"no handler for {event.event_type}")
            await self._consumer.apply(event, handler)
        except Exception as exc:
            status = "FAILED" if retries >= MAX_RETRIES else "PENDING"
            if status == "FAILED":
                log.critical(
                    "failed event %s gave up after %d retries: %s", record_id, retries, exc
                )
            await self._mark(record_id, status, retries, f"{type(exc).__name__}: {exc}")
            return status
        await self._mark(record_id, "RESOLVED", retries, None)
        return "RESOLVED"

    async def _mark(self, record_id: int, status: str, retries: int, error: str | None) -> None:
        now = self._clock()
        values: dict[str, object] = {
            "status": status,
            "attempts": retries,
            "updated_at": now,
            "next_attempt_at": now + backoff(retries),
        }
        if error is not None:
            values["error"] = error[:4000]
        async with self._engine.begin() as conn:
            await conn.execute(
                update(failed_events).where(failed_events.c.id == record_id).values(**values)
            )


async def requeue_failed(engine: AsyncEngine, consumer: str, record_id: int, now: datetime) -> bool:
    """Makes a parked event (PENDING or FAILED) due now with a fresh retry budget; the
    service's retry worker picks it up. False if there is no such parked event."""
    async with engine.begin() as conn:
        done = await conn.execute(
            update(failed_events)
            .where(
                failed_events.c.id == record_id,
                failed_events.c.consumer == consumer,
                failed_events.c.status.in_(["PENDING", "FAILED"]),
            )
            .values(status="PENDING", attempts=0, next_attempt_at=now, updated_at=now)
        )
    return bool(done.rowcount)


def requeue_command(consumer: str) -> Callable[[DatabaseSettings, int], Coroutine[Any, Any, bool]]:
    """The `requeue-failed-event ID` command of a service whose consumer is `consumer`."""

    async def requeue(settings: DatabaseSettings, record_id: int) -> bool:
        engine = create_async_engine(settings.database_url())
        try:
            return await requeue_failed(engine, consumer, record_id, utc_now())
        finally:
            await engine.dispose()

    return requeue
