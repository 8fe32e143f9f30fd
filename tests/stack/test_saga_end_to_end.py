"""The order saga end to end, through the real servers: user and product over gRPC, orders and
payments in MariaDB, their outbox rows relayed by Debezium to Kafka, and each service's
consumer taking the next step. A paid order completes and its stock is sold; a declined one is
cancelled and its stock given back."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from typing import Any

import grpc
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from commerce_devstack.endpoints import Endpoints
from commerce_devstack.local_shop import outbox_relays
from commerce_services.db.settings import DatabaseSettings
from commerce_services.events.consumer import EventConsumer, Handler, RetryPolicy, Together
from commerce_services.events.dead_letters import DeadLetters
from commerce_services.order import migrations as order_migrations
from commerce_services.order.inventory_client import GrpcReservations
from commerce_services.order.model import OrderStatus
from commerce_services.order.payment_events import payment_event_handlers
from commerce_services.order.placement import OrderPlacement
from commerce_services.order.ports import OutOfStock
from commerce_services.order.store import OrderStore
from commerce_services.order.users_client import GrpcUsers
from commerce_services.payment import migrations as payment_migrations
from commerce_services.payment.charging import PaymentProcessor
from commerce_services.payment.gateway import FakeGateway
from commerce_services.payment.settings import PaymentSettings
from commerce_services.payment.tables import payments
from commerce_services.product.inventory.grpc_service import InventoryServicer
from commerce_services.product.inventory.store import InventoryStore
from commerce_services.product.order_events import order_event_handlers, order_events_together
from commerce_services.rpc.commerce.v1 import inventory_pb2_grpc, users_pb2_grpc
from commerce_services.runtime.clock import utc_now
from commerce_services.user.grpc_service import UserServicer
from commerce_services.user.store import UserStore
from tests.stack.access_tokens import AUTH_SETTINGS
from tests.stack.catalog_prices import catalog_prices
from tests.stack.conftest import TTL, Clock
from tests.stack.migrations import migrator as _migrator

PRICE = Decimal("12.50")  # of every SKU named SAGA-...


@dataclass
class Shop:
    placement: OrderPlacement
    orders: OrderStore
    inventory: InventoryStore
    users: UserStore
    payment_engine: AsyncEngine


async def _consume(
    stack: Endpoints,
    topic: str,
    name: str,
    engine: AsyncEngine,
    handlers: dict[str, Handler],
    together: Together | None,
    producer: AIOKafkaProducer,
) -> None:
    kafka = AIOKafkaConsumer(
        bootstrap_servers=stack["kafka"]["bootstrap_servers"],
        group_id=name,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await kafka.start()
    try:
        while topic not in await kafka.topics():  # noqa: ASYNC110 - created by the connector
            await asyncio.sleep(0.5)
        kafka.subscribe([topic])
        consumer = EventConsumer(
            name,
            kafka,
            engine,
            handlers,
            DeadLetters(name, producer, engine, utc_now),
            utc_now,
            RetryPolicy(max_attempts=3, initial_backoff_s=0.05),
            together,
        )
        await consumer.run(asyncio.Event())
    finally:
        await kafka.stop()


@pytest.fixture
async def shop(
    request: pytest.FixtureRequest,
    stack: Endpoints,
    store: InventoryStore,
    engine: AsyncEngine,
    clock: Clock,
    unique: str,
) -> AsyncIterator[Shop]:
    payment_up = getattr(request, "param", {}).get("payment_up", True)
    order_settings = DatabaseSettings.from_values(stack.service_settings("order"))
    payment_settings = PaymentSettings.from_values(
        {**stack.service_settings("payment"), **AUTH_SETTINGS}
    )
    order_migrations.upgrade(_migrator(stack, "order"))
    payment_migrations.upgrade(_migrator(stack, "payment"))
    order_engine = create_async_engine(order_settings.database_url())
    payment_engine = create_async_engine(payment_settings.database_url())
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack["ferretdb"]["uri"])
    users = UserStore(mongo, f"saga_{unique}", utc_now)
    await users.ensure_indexes()
    orders = OrderStore(order_engine, clock, timedelta(minutes=15))

    server = grpc.aio.server()
    prices = catalog_prices(str(PRICE), lambda sku: sku.startswith("SAGA-"))
    inventory_pb2_grpc.add_InventoryServiceServicer_to_server(
        InventoryServicer(store, prices, TTL), server
    )
    users_pb2_grpc.add_UserServiceServicer_to_server(UserServicer(users), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")

    # Generous deadlines: the rush test's 200 calls share this process with the gRPC server;
    # what is tested here is the saga, not deadlines (test_order_placement covers those).
    placement = OrderPlacement(
        GrpcUsers(users_pb2_grpc.UserServiceStub(channel), 30.0),
        GrpcReservations(inventory_pb2_grpc.InventoryServiceStub(channel), 30.0),
        orders,
        timedelta(minutes=5),
    )

    prefix = f"saga{unique}"
    producer = AIOKafkaProducer(bootstrap_servers=stack["kafka"]["bootstrap_servers"])
    await producer.start()
    tasks: list[asyncio.Task[None]] = []
    async with outbox_relays(stack, prefix, {"order": order_engine, "payment": payment_engine}):
        try:
            processor = PaymentProcessor(FakeGateway(), utc_now, attempts=2, backoff_s=0.05)
            # Wired as the services wire them (each service's main).
            consumers: list[tuple[str, str, AsyncEngine, dict[str, Handler], Together | None]] = [
                (
                    f"{prefix}.order.events",
                    f"payment-{unique}",
                    payment_engine,
                    processor.handlers(),
                    None,
                ),
                (
                    f"{prefix}.order.events",
                    f"product-{unique}",
                    engine,
                    order_event_handlers(store),
                    order_events_together(store),
                ),
                (
                    f"{prefix}.payment.events",
                    f"order-{unique}",
                    order_engine,
                    payment_event_handlers(orders),
                    None,
                ),
            ]
            for topic, name, db, handlers, together in consumers[0 if payment_up else 1 :]:
                tasks.append(
                    asyncio.create_task(
                        _consume(stack, topic, name, db, handlers, together, producer)
                    )
                )
            yield Shop(placement, orders, store, users, payment_engine)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await producer.stop()
            await channel.close()
            await server.stop(grace=None)
            await mongo.drop_database(f"saga_{unique}")
            await mongo.close()
            await order_engine.dispose()
            await payment_engine.dispose()


async def _settled(shop: Shop, order_id: str) -> OrderStatus:
    async with asyncio.timeout(90):
        while (status := (await shop.orders.get(order_id)).status) == OrderStatus.PENDING:  # noqa: ASYNC110
            await asyncio.sleep(0.3)
    return status


async def _stock(shop: Shop, sku: str, want: Callable[[int, int], bool]) -> tuple[int, int]:
    async with asyncio.timeout(60):
        while True:
            level = await shop.inventory.stock_level(sku)
            assert level is not None
            if want(level.stock, level.reserved):
                return level.stock, level.reserved
            await asyncio.sleep(0.3)


async def test_paid_order_completes_and_declined_order_gives_stock_back(shop: Shop) -> None:
    await shop.inventory.set_stock("SAGA-SKU", 10)
    before = await shop.inventory.stock_level("SAGA-SKU")
    assert before is not None
    user = await shop.users.create(f"saga-{random.random()}@example.com", "Saga")

    paid = await shop.placement.place(user.user_id, "pay-ok", [("SAGA-SKU", 2)], "EUR", "tok_visa")
    assert paid.total == Decimal("25.00")
    assert await _settled(shop, paid.order_id) == OrderStatus.COMPLETED
    stock, reserved = await _stock(shop, "SAGA-SKU", lambda s, r: s == before.stock - 2)
    assert (stock, reserved) == (8, before.reserved)

    declined = await shop.placement.place(
        user.user_id, "pay-no", [("SAGA-SKU", 3)], "EUR", "tok_declined"
    )
    assert await _settled(shop, declined.order_id) == OrderStatus.CANCELLED
    assert (await shop.orders.get(declined.order_id)).cancel_reason == "payment_declined"
    assert await _stock(shop, "SAGA-SKU", lambda s, r: r == before.reserved) == (8, 0)

    async with shop.payment_engine.connect() as conn:
        rows = (
            await conn.execute(
                select(payments.c.order_id, payments.c.status).where(
                    payments.c.order_id.in_([paid.order_id, declined.order_id])
                )
            )
        ).all()
    assert sorted((r.order_id, r.status) for r in rows) == sorted(
        [(paid.order_id, "SUCCEEDED"), (declined.order_id, "FAILED")]
    )


@pytest.mark.parametrize("shop", [{"payment_up": False}], indirect=True)
async def test_a_stuck_order_is_cancelled_at_its_deadline_and_its_stock_released(
    shop: Shop, clock: Clock
) -> None:
    await shop.inventory.set_stock("SAGA-SKU", 10)
    before = await shop.inventory.stock_level("SAGA-SKU")
    assert before is not None
    user = await shop.users.create(f"stuck-{random.random()}@example.com", "Stuck")
    # The payment service is down: nobody answers order_created.
    stuck = await shop.placement.place(user.user_id, "stuck", [("SAGA-SKU", 4)], "EUR", "tok_visa")
    assert await _stock(shop, "SAGA-SKU", lambda s, r: r == before.reserved + 4)
    await asyncio.sleep(2)
    assert (await shop.orders.get(stuck.order_id)).status == OrderStatus.PENDING

    clock.now += timedelta(minutes=16)
    cancelled: list[str] = []
    while batch := await shop.orders.cancel_overdue():  # older tests' orders fall due too
        cancelled += batch
    assert stuck.order_id in cancelled
    final = await shop.orders.get(stuck.order_id)
    assert (final.status, final.cancel_reason) == (OrderStatus.CANCELLED, "reservation_expired")
    # order_cancelled travels through Debezium and Kafka to the product service.
    assert await _stock(shop, "SAGA-SKU", lambda s, r: r == before.reserved) == (
        before.stock,
        before.reserved,
    )


async def test_two_hundred_buyers_fifty_units_fifty_completed_orders(
    shop: Shop, unique: str
) -> None:
    sku = f"SAGA-{unique}"
    await shop.inventory.set_stock(sku, 50)
    users = [
        await shop.users.create(f"rush-{i}-{random.random()}@example.com", "Rush")
        for i in range(20)
    ]

    async def buy(i: int) -> str | None:
        try:
            order = await shop.placement.place(
                users[i % 20].user_id, f"rush-{unique}-{i}", [(sku, 1)], "EUR", "tok_visa"
            )
        except OutOfStock:
            return None
        return order.order_id

    placed = [order_id for order_id in await asyncio.gather(*map(buy, range(200))) if order_id]
    assert len(placed) == 50
    assert (
        sorted([await _settled(shop, order_id) for order_id in placed])
        == [OrderStatus.COMPLETED] * 50
    )
    # Every unit sold exactly once, nothing left reserved, no order for the other 150.
    assert await _stock(shop, sku, lambda s, r: s == 0) == (0, 0)
    for user in users:
        mine = await shop.orders.for_user(user.user_id)
        assert all(order.order_id in placed for order in mine)
    assert sum([len(await shop.orders.for_user(user.user_id)) for user in users]) == 50
