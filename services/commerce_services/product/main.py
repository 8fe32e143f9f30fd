"""`commerce-product migrate | serve | requeue-failed-event ID`: the product service.

migrate               applies the database migrations (before serving, e.g. an init container)
serve                 REST on PRODUCT_HTTP_PORT (inventory, categories, the product catalog),
                      gRPC (commerce.v1.InventoryService, commerce.v1.CatalogService) on
                      PRODUCT_GRPC_PORT, the order-event consumer, the failed-events retry
                      worker, the audit that reports reservations held past their expiry
                      (never releasing them), the catalog upkeep (writes interrupted between
                      MongoDB and MariaDB, old revision stubs) and the outbox purge
requeue-failed-event  gives a parked event (failed_events row) a fresh retry budget, due now
"""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx
from prometheus_client import Gauge
from pymongo import AsyncMongoClient

from commerce_services.auth.grpc_identity import CallerPolicy
from commerce_services.auth.settings import remote_verifier
from commerce_services.db.document_store import document_database
from commerce_services.db.engine import database_ready, reading_engine, service_engine
from commerce_services.events.outbox import Outbox, purge_job
from commerce_services.events.retry_worker import requeue_command
from commerce_services.events.subscription import Subscription
from commerce_services.product import migrations
from commerce_services.product.catalog.grpc_service import CatalogServicer
from commerce_services.product.catalog.store import CatalogStore, Document
from commerce_services.product.catalog.tables import outbox
from commerce_services.product.categories.store import CategoryStore
from commerce_services.product.http_api import create_app
from commerce_services.product.inventory.grpc_service import InventoryServicer
from commerce_services.product.inventory.store import InventoryStore
from commerce_services.product.order_events import order_event_handlers, order_events_together
from commerce_services.product.settings import ProductSettings
from commerce_services.rpc.commerce.v1 import catalog_pb2_grpc, inventory_pb2_grpc
from commerce_services.runtime.clock import utc_now
from commerce_services.runtime.entry_point import ServiceCommands, run
from commerce_services.runtime.grpc_wiring import secure_server
from commerce_services.runtime.periodic import every
from commerce_services.runtime.serving import serve_until_signalled

CONSUMER_NAME = "product.order-events"

log = logging.getLogger("commerce_services.product")

# Who may call each gRPC method (mTLS identities): the order service reserves (at prices),
# releases and prices; confirmation comes by event, so nobody calls ConfirmReservation today
# but the order service, should it.
CALLERS: CallerPolicy = {
    "/commerce.v1.InventoryService/ReserveStock": frozenset({"order"}),
    "/commerce.v1.InventoryService/ReleaseReservation": frozenset({"order"}),
    "/commerce.v1.InventoryService/ConfirmReservation": frozenset({"order"}),
    "/commerce.v1.CatalogService/GetPrices": frozenset({"order"}),
}

OVERDUE_RESERVATIONS = Gauge(
    "commerce_reservations_overdue",
    "Reservations held past their expiry, neither confirmed nor released (at most 1000 counted)",
)


async def serve(settings: ProductSettings) -> None:
    engine = service_engine(settings)
    reads = reading_engine(settings)
    store = InventoryStore(engine)
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(
        settings.mongo_uri.get_secret_value(), serverSelectionTimeoutMS=5000, tz_aware=False
    )
    catalog = CatalogStore(
        mongo,
        document_database(settings.mongo_uri, settings.mongo_database),
        engine,
        utc_now,
        reads=reads,
    )
    subscription = Subscription(
        CONSUMER_NAME,
        settings.order_events_topic,
        settings.consumer_group,
        settings,
        engine,
        order_event_handlers(store),
        order_events_together(store),
    )

    async def mongo_ready() -> None:
        await mongo.admin.command("ping")

    async def catalog_upkeep() -> None:
        await catalog.repair_writes()
        await catalog.complete_projection()
        await catalog.copy_documents()
        await catalog.drop_stubs()

    async def upkeep() -> None:
        await every(settings.catalog_upkeep_interval_s, "catalog upkeep", catalog_upkeep)

    async def report_overdue() -> None:
        overdue = await store.overdue(limit=1000)
        OVERDUE_RESERVATIONS.set(len(overdue))
        if overdue:
            log.warning("reservations held past their expiry", extra={"orders": overdue[:20]})

    async def audit() -> None:
        await every(settings.reservation_audit_interval_s, "reservation audit", report_overdue)

    jwks_http = httpx.AsyncClient(timeout=3.0)
    app = create_app(
        store,
        CategoryStore(engine, utc_now),
        catalog,
        # What serving needs; the consumer's trouble shows in its own metrics.
        {"mariadb": database_ready(engine), "mongodb": mongo_ready},
        currencies=settings.currencies,
        verifier=remote_verifier(settings, jwks_http),
    )
    grpc_server = secure_server(settings, CALLERS, f"{settings.listen_host}:{settings.grpc_port}")
    inventory_pb2_grpc.add_InventoryServiceServicer_to_server(
        InventoryServicer(store, catalog.prices, timedelta(seconds=settings.reservation_ttl_s)),
        grpc_server,
    )
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(CatalogServicer(catalog), grpc_server)
    try:
        await catalog.ensure_layout()
        async with subscription:
            await serve_until_signalled(
                app,
                grpc_server,
                settings.listen_host,
                settings.http_port,
                background=[
                    subscription.consume,
                    audit,
                    subscription.retry_failed,
                    upkeep,
                    purge_job(Outbox(outbox), engine, settings),
                ],
            )
    finally:
        await jwks_http.aclose()
        await mongo.close()
        await engine.dispose()
        await reads.dispose()


COMMANDS = ServiceCommands(
    "product",
    __doc__ or "",
    ProductSettings,
    serve,
    migrations.upgrade,
    requeue_command(CONSUMER_NAME),
)


def main(argv: list[str] | None = None) -> int:
    return run(COMMANDS, argv)
