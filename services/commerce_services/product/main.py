"""`commerce-product migrate | serve`: the product service's entry point.

migrate  applies the database migrations (run before serving, e.g. as an init container)
serve    REST on PRODUCT_HTTP_PORT, gRPC (commerce.v1.InventoryService) on PRODUCT_GRPC_PORT,
         and the sweeper that releases expired reservations
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
from datetime import timedelta

import grpc
from pydantic import ValidationError
from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from commerce_services.product import migrations
from commerce_services.product.http_api import create_app
from commerce_services.product.inventory.grpc_service import InventoryServicer
from commerce_services.product.inventory.store import InventoryStore
from commerce_services.product.settings import ProductSettings
from commerce_services.rpc.commerce.v1 import inventory_pb2_grpc
from commerce_services.runtime.logging import configure_logging
from commerce_services.runtime.serving import serve_until_signalled

log = logging.getLogger("commerce_services.product")


async def sweep_expired(store: InventoryStore, interval_s: float) -> None:
    """Releases reservations past their deadline, forever; a failed sweep is retried later."""
    while True:
        try:
            released = await store.expire_due()
            if released:
                log.info("released expired reservations", extra={"orders": released})
        except Exception:
            log.exception("reservation sweep failed; retrying in %ss", interval_s)
        await asyncio.sleep(interval_s)


async def serve(settings: ProductSettings) -> None:
    engine = create_async_engine(
        settings.database_url(),
        pool_size=settings.db_pool_size,
        pool_timeout=settings.db_pool_timeout_s,
        pool_pre_ping=True,
    )
    store = InventoryStore(engine)

    async def mariadb_ready() -> None:
        async with engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    app = create_app(store, {"mariadb": mariadb_ready})
    grpc_server = grpc.aio.server()
    inventory_pb2_grpc.add_InventoryServiceServicer_to_server(
        InventoryServicer(store, timedelta(seconds=settings.reservation_ttl_s)), grpc_server
    )
    grpc_server.add_insecure_port(f"{settings.listen_host}:{settings.grpc_port}")
    sweeper = asyncio.create_task(sweep_expired(store, settings.reservation_sweep_interval_s))
    log.info("serving", extra={"http_port": settings.http_port, "grpc_port": settings.grpc_port})
    try:
        await serve_until_signalled(app, grpc_server, settings.listen_host, settings.http_port)
    finally:
        sweeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sweeper
        await engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="commerce-product",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["migrate", "serve"])
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
    asyncio.run(serve(settings))
    return 0
