"""`commerce-payment migrate | serve | requeue-failed-event ID`: the payment service.

migrate               applies the database migrations
serve                 REST on PAYMENT_HTTP_PORT (GET /api/v1/payments?order_id=), the
                      `order_created`/`order_cancelled` consumer that charges, refunds or voids,
                      the failed-events retry worker and the outbox purge
requeue-failed-event  gives a parked event (failed_events row) a fresh retry budget, due now
"""

from __future__ import annotations

import httpx

from commerce_services.auth.settings import remote_verifier
from commerce_services.db.engine import database_ready, service_engine
from commerce_services.events.outbox import Outbox, purge_job
from commerce_services.events.retry_worker import requeue_command
from commerce_services.events.subscription import Subscription
from commerce_services.payment import migrations
from commerce_services.payment.charging import PaymentProcessor
from commerce_services.payment.gateway import FakeGateway
from commerce_services.payment.http_api import create_app
from commerce_services.payment.settings import PaymentSettings
from commerce_services.payment.tables import outbox
from commerce_services.runtime.clock import utc_now
from commerce_services.runtime.entry_point import ServiceCommands, run
from commerce_services.runtime.serving import serve_until_signalled

CONSUMER_NAME = "payment.order-events"


async def serve(settings: PaymentSettings) -> None:
    engine = service_engine(settings)
    processor = PaymentProcessor(
        FakeGateway(), utc_now, settings.gateway_attempts, settings.gateway_backoff_s
    )
    subscription = Subscription(
        CONSUMER_NAME,
        settings.order_events_topic,
        settings.consumer_group,
        settings,
        engine,
        processor.handlers(),
        processor.together,
    )

    purge_outbox = purge_job(Outbox(outbox), engine, settings)

    # Reading payments needs MariaDB only; the consumer's trouble shows in its own metrics.
    jwks_http = httpx.AsyncClient(timeout=3.0)
    app = create_app(
        engine, {"mariadb": database_ready(engine)}, remote_verifier(settings, jwks_http)
    )
    try:
        async with subscription:
            await serve_until_signalled(
                app,
                None,
                settings.listen_host,
                settings.http_port,
                background=[subscription.consume, subscription.retry_failed, purge_outbox],
            )
    finally:
        await jwks_http.aclose()
        await engine.dispose()


COMMANDS = ServiceCommands(
    "payment",
    __doc__ or "",
    PaymentSettings,
    serve,
    migrations.upgrade,
    requeue_command(CONSUMER_NAME),
)


def main(argv: list[str] | None = None) -> int:
    return run(COMMANDS, argv)
