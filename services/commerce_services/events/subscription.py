"""One service's subscription to one event topic, wired for a serving process.

Bundles the Kafka clients, the idempotent EventConsumer, its dead-letter path and the
failed-events retrier, and offers them as background jobs, so every service's entry point says
only which topic, which handlers and which database.

Kafka is connected inside the consuming job, retried until it answers: a service whose serving
does not need Kafka (placing an order writes the outbox) starts and serves during a Kafka
outage, and consumes once Kafka is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from types import TracebackType

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_services.events.consumer import EventConsumer, Handler, RetryPolicy, Together
from commerce_services.events.dead_letters import DeadLetters
from commerce_services.events.retry_worker import FailedEventRetrier
from commerce_services.events.settings import ConsumerSettings
from commerce_services.runtime.clock import utc_now
from commerce_services.runtime.periodic import every

log = logging.getLogger(__name__)


class Subscription:
    def __init__(
        self,
        name: str,
        topic: str,
        group: str,
        settings: ConsumerSettings,
        engine: AsyncEngine,
        handlers: Mapping[str, Handler],
        together: Together | None = None,
    ) -> None:
        self.name = name
        self.topic = topic
        self._settings = settings
        self._producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True
        )
        self._kafka = AIOKafkaConsumer(
            bootstrap_servers=settings.kafka_bootstrap,
            group_id=group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
        )
        self._admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        self.consumer = EventConsumer(
            name,
            self._kafka,
            engine,
            handlers,
            DeadLetters(name, self._producer, engine, utc_now),
            utc_now,
            RetryPolicy(
                max_attempts=settings.consumer_max_attempts,
                initial_backoff_s=settings.consumer_initial_backoff_s,
            ),
            together,
        )
        self._retrier = FailedEventRetrier(self.consumer, engine, utc_now)

    async def __aenter__(self) -> Subscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._kafka.stop()
        await self._admin.close()
        await self._producer.stop()

    async def _topic_exists(self) -> bool:
        return self.topic in await self._admin.list_topics()

    async def _connect(self) -> None:
        """Starts the Kafka clients, retrying with capped backoff until Kafka answers."""
        attempt = 0
        for client in (self._producer, self._admin, self._kafka):
            while True:
                try:
                    await client.start()
                    break
                except KafkaError as exc:
                    attempt += 1
                    if attempt == 1 or attempt % 12 == 0:
                        log.warning("%s: Kafka does not answer yet (%s); retrying", self.name, exc)
                    await asyncio.sleep(min(0.5 * 2**attempt, 5.0))

    async def consume(self) -> None:
        """Background job: connects, then consumes until cancelled."""
        await self._connect()
        # The topic comes with the producing service's OutboxConnector; until then there is
        # nothing to consume, and the log says why. (Subscribing earlier would block the
        # client on the missing topic.)
        waited = 0
        while not await self._topic_exists():
            if waited % 12 == 0:
                log.warning("waiting for topic %s", self.topic)
            await asyncio.sleep(5)
            waited += 1
        self._kafka.subscribe([self.topic])
        await self.consumer.run(asyncio.Event())

    async def retry_failed(self) -> None:
        """Background job: re-drives parked events on an interval."""
        await every(
            self._settings.failed_events_interval_s,
            f"{self.name} failed-event retry",
            self._retrier.run_once,
        )
