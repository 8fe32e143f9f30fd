"""`commerce-order migrate | serve | requeue-failed-event ID`: the order service.

migrate               applies the database migrations
serve                 REST on ORDER_HTTP_PORT (placing and reading orders); gRPC clients of the
                      user service (ValidateUser) and the product service (prices, stock
                      reservations); the payment-event consumer that moves the saga on, the
                      failed-events retry worker, the deadline sweep that cancels stuck orders,
                      the placement sweep that releases the stock of abandoned placements and
                      the outbox purge
requeue-failed-event  gives a parked event (failed_events row) a fresh retry budget, due now
"""

from __future__ import annotations

import logging
from datetime import timedelta

import httpx

from commerce_services.auth.settings import remote_verifier
from commerce_services.db.engine import database_ready, service_engine
from commerce_services.events.outbox import Outbox, purge_job
from commerce_services.events.retry_worker import requeue_command
from commerce_services.events.subscription import Subscription
from commerce_services.order import migrations
from commerce_services.order.http_api import create_app
from commerce_services.order.inventory_client import GrpcReservations
from commerce_services.order.payment_events import payment_event_handlers, payment_events_together
from commerce_services.order.placement import OrderPlacement
from commerce_services.order.settings import OrderSettings
from commerce_services.order.store import OrderStore
from commerce_services.order.tables import outbox
from commerce_services.order.users_client import GrpcUsers
from commerce_services.rpc.commerce.v1 import inventory_pb2_grpc, users_pb2_grpc
from commerce_services.runtime.clock import utc_now
from commerce_services.runtime.entry_point import ServiceCommands, run
from commerce_services.runtime.grpc_wiring import secure_channel
from commerce_services.runtime.periodic import every
from commerce_services.runtime.serving import serve_until_signalled

log = logging.getLogger("commerce_services.order")

CONSUMER_NAME = "order.payment-events"


async def serve(settings: OrderSettings) -> None:
    engine = service_engine(settings)
    store = OrderStore(engine, utc_now, timedelta(seconds=settings.deadline_s))
    subscription = Subscription(
        CONSUMER_NAME,
        settings.payment_events_topic,
        settings.consumer_group,
        settings,
        engine,
        payment_event_handlers(store),
        payment_events_together(store),
    )
    users_channel = secure_channel(settings.user_grpc_target, settings)
    product_channel = secure_channel(settings.product_grpc_target, settings)
    placement = OrderPlacement(
        GrpcUsers(users_pb2_grpc.UserServiceStub(users_channel), settings.rpc_timeout_s),
        GrpcReservations(
            inventory_pb2_grpc.InventoryServiceStub(product_channel), settings.rpc_timeout_s
        ),
        store,
        timedelta(seconds=settings.placement_lease_s),
    )

    async def release_abandoned() -> None:
        released = await placement.sweep()
        if released:
            log.warning("stock of abandoned placements released", extra={"orders": released})

    async def placement_sweep() -> None:
        await every(settings.placement_sweep_interval_s, "placement sweep", release_abandoned)

    async def cancel_overdue() -> None:
        cancelled = await store.cancel_overdue()
        if cancelled:
            log.warning("stuck orders cancelled at their deadline", extra={"orders": cancelled})

    async def deadline_sweep() -> None:
        await every(settings.deadline_sweep_interval_s, "deadline sweep", cancel_overdue)

    purge_outbox = purge_job(Outbox(outbox), engine, settings)

    jwks_http = httpx.AsyncClient(timeout=settings.rpc_timeout_s)
    app = create_app(
        placement,
        store,
        settings.currency,
        # Placing and reading orders need MariaDB only (the outbox absorbs a Kafka outage);
        # the consumer's trouble shows in its own metrics, not as a checkout outage.
        {"mariadb": database_ready(engine)},
        remote_verifier(settings, jwks_http),
    )
    try:
        async with subscription:
            await serve_until_signalled(
                app,
                None,
                settings.listen_host,
                settings.http_port,
                background=[
                    subscription.consume,
                    subscription.retry_failed,
                    deadline_sweep,
                    placement_sweep,
                    purge_outbox,
                ],
            )
    finally:
        await jwks_http.aclose()
        await users_channel.close()
        await product_channel.close()
        await engine.dispose()


COMMANDS = ServiceCommands(
    "order",
    __doc__ or "",
    OrderSettings,
    serve,
    migrations.upgrade,
    requeue_command(CONSUMER_NAME),
)


def main(argv: list[str] | None = None) -> int:
    return run(COMMANDS, argv)
