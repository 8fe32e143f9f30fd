"""`commerce-product migrate | serve | requeue-failed-event ID`: the product service.

migrate               applies the database migrations (before serving, e.g. an init container)
serve                 REST on PRODUCT_HTTP_PORT, gRPC (commerce.v1.InventoryService) on
                      PRODUCT_GRPC_PORT, the order-event consumer, the failed-events retry
                      worker and the sweeper that releases expired reservations
requeue-failed-event  gives a parked event (failed_events row) a fresh retry budget, due now
"""

from __future__ import annotations

import argparse
import asyncio
import logging
from datetime import timedelta

import grpc
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from commerce_services.events.consumer import EventConsumer, RetryPolicy
from commerce_services.events.dead_letters import DeadLetters
from commerce_services.events.retry_worker import FailedEventRetrier, requeue_failed
from commerce_services.product import migrations
from commerce_services.product.categories.store import CategoryStore
from commerce_services.product.http_api import create_app
from commerce_services.product.inventory.grpc_service import InventoryServicer
from commerce_services.product.inventory.store import InventoryStore
from commerce_services.product.order_events import order_event_handlers
from commerce_services.product.settings import ProductSettings
from commerce_services.rpc.commerce.v1 import inventory_pb2_grpc
from commerce_services.runtime.clock import utc_now
from commerce_services.runtime.logging import configure_logging
from commerce_services.runtime.periodic import every
from commerce_services.runtime.serving import BackgroundJobFailed, serve_until_signalled

log = logging.getLogger("commerce_services.product")

CONSUMER_NAME = "product.order-events"


async def serve(settings: ProductSettings) -> None:
    engine = create_async_engine(
        settings.database_url(),
        pool_size=settings.db_pool_size,
        pool_timeout=settings.db_pool_timeout_s,
        pool_pre_ping=True,
    )
    store = InventoryStore(engine)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True
    )
    kafka_consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=settings.consumer_group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    consumer = EventConsumer(
        CONSUMER_NAME,
        kafka_consumer,
        engine,
        order_event_handlers(store),
        DeadLetters(CONSUMER_NAME, producer, engine, utc_now),
        utc_now,
        RetryPolicy(max_attempts=settings.consumer_max_attempts),
    )
    retrier = FailedEventRetrier(consumer, engine, utc_now)

    async def mariadb_ready() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def topic_exists() -> bool:
        return settings.order_events_topic in await admin.list_topics()

    async def kafka_ready() -> None:
        if not await topic_exists():
            raise LookupError(f"topic {settings.order_events_topic} does not exist")

    async def consume() -> None:
        # The topic is created with the order service's OutboxConnector; until then there is
        # nothing to consume, and readiness says why.
        waited = 0.0
        while not await topic_exists():
            if waited % 60 == 0:
                log.warning("waiting for topic %s", settings.order_events_topic)
            await asyncio.sleep(5)
            waited += 5
        kafka_consumer.subscribe([settings.order_events_topic])
        await consumer.run(asyncio.Event())  # runs until cancelled at shutdown

    async def sweep() -> None:
        await every(settings.reservation_sweep_interval_s, "reservation sweep", store.expire_due)

    async def retry_failed() -> None:
        await every(settings.failed_events_interval_s, "failed-event retry", retrier.run_once)

    app = create_app(
        store, CategoryStore(engine, utc_now), {"mariadb": mariadb_ready, "kafka": kafka_ready}
    )
    grpc_server = grpc.aio.server()
    inventory_pb2_grpc.add_InventoryServiceServicer_to_server(
        InventoryServicer(store, timedelta(seconds=settings.reservation_ttl_s)), grpc_server
    )
    grpc_server.add_insecure_port(f"{settings.listen_host}:{settings.grpc_port}")
    await producer.start()
    await admin.start()
    await kafka_consumer.start()
    log.info("serving", extra={"http_port": settings.http_port, "grpc_port": settings.grpc_port})
    try:
        await serve_until_signalled(
            app,
            grpc_server,
            settings.listen_host,
            settings.http_port,
            background=[consume, sweep, retry_failed],
        )
    finally:
        await kafka_consumer.stop()
        await admin.close()
        await producer.stop()
        await engine.dispose()


async def requeue(settings: ProductSettings, record_id: int) -> bool:
    engine = create_async_engine(settings.database_url())
    try:
        return await requeue_failed(engine, CONSUMER_NAME, record_id, utc_now())
    finally:
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="commerce-product",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["migrate", "serve", "requeue-failed-event"])
    parser.add_argument("id", nargs="?", type=int, help="failed_events id (requeue-failed-event)")
    args = parser.parse_args(argv)
    try:
        settings = ProductSettings()  # type: ignore[call-arg]  # values come from the environment
    except ValidationError as exc:
        print(f"invalid PRODUCT_* configuration:\n{exc}")
        return 2
    configure_logging("product", settings.log_level)
    if args.command == "migrate":
        migrations.upgrade(settings)
        log.info("migrations applied")
        return 0
    if args.command == "requeue-failed-event":
        if args.id is None:
            parser.error("requeue-failed-event needs the failed_events id")
        found = asyncio.run(requeue(settings, args.id))
        print(f"failed event {args.id} requeued" if found else f"no parked event {args.id}")
        return 0 if found else 1
    try:
        asyncio.run(serve(settings))
    except BackgroundJobFailed:
        return 1
    return 0
