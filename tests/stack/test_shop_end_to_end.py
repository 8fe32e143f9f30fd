"""The four services as real processes, through their REST APIs only, with the real Debezium
relay and Kafka between them: orders complete or are cancelled (declined, timed out) with their
money and stock settled, one order's saga is one trace, a poison record is dead-lettered while
the orders behind it on its partition go through, and a charge that lands after its order was
cancelled is refunded."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from commerce_devstack.endpoints import Endpoints
from commerce_devstack.local_shop import LocalShop, local_shop
from commerce_devstack.settings import StackSettings
from commerce_devstack.shop_accounts import Account
from commerce_services.db.settings import DatabaseSettings
from commerce_services.order.model import order_id_for
from commerce_services.order.tables import outbox as order_outbox
from commerce_services.payment.tables import outbox as payment_outbox

DEADLINE_S = 20  # short, so the stuck-order test does not wait 15 minutes


@pytest.fixture(scope="module")
async def shop(stack: Endpoints) -> AsyncIterator[LocalShop]:
    prefix = f"e2e{uuid.uuid4().hex[:8]}"
    overrides = {
        "ORDER_DEADLINE_S": str(DEADLINE_S),
        "ORDER_DEADLINE_SWEEP_INTERVAL_S": "1",
        "PRODUCT_RESERVATION_TTL_S": str(DEADLINE_S * 3),
        "PAYMENT_GATEWAY_BACKOFF_S": "0.05",
        "ORDER_CONSUMER_INITIAL_BACKOFF_S": "0.05",
        "PRODUCT_CONSUMER_INITIAL_BACKOFF_S": "0.05",
        "PAYMENT_CONSUMER_INITIAL_BACKOFF_S": "0.05",
        "PRODUCT_CONSUMER_MAX_ATTEMPTS": "2",
        "PAYMENT_CONSUMER_MAX_ATTEMPTS": "2",
    }
    async with local_shop(stack, StackSettings().state_dir, prefix, overrides) as running:
        yield running


@pytest.fixture(scope="module")
async def engines(stack: Endpoints) -> AsyncIterator[dict[str, AsyncEngine]]:
    made = {
        service: create_async_engine(
            DatabaseSettings.from_values(stack.service_settings(service)).database_url()
        )
        for service in ("order", "payment")
    }
    yield made
    for engine in made.values():
        await engine.dispose()


@pytest.fixture
async def http(shop: LocalShop) -> AsyncIterator[httpx.AsyncClient]:
    """Signed in as staff: the catalog, stock, and everyone's orders and payments."""
    async with httpx.AsyncClient(timeout=15) as client:
        client.headers.update((await shop.staff(client)).headers)
        yield client


async def _user(http: httpx.AsyncClient, shop: LocalShop, unique: str) -> Account:
    return await shop.customer(http, f"e2e-{unique}")


async def _product(
    http: httpx.AsyncClient, shop: LocalShop, unique: str, stock: int, price: str = "19.90"
) -> str:
    category = await http.post(f"{shop.url('product')}/api/v1/categories", json={"name": unique})
    assert category.status_code == 201, category.text
    sku = f"E2E-{unique}".upper()
    product = await http.post(
        f"{shop.url('product')}/api/v1/products",
        json={
            "title": f"Mug {unique}",
            "description": "Holds coffee",
            "brand": "Acme",
            "category_ids": [category.json()["id"]],
            "primary_category_id": category.json()["id"],
            "variants": [{"sku": sku, "price": {"amount": price, "currency": "EUR"}}],
        },
    )
    assert product.status_code == 201, product.text
    level = await http.put(f"{shop.url('product')}/api/v1/inventory/{sku}", json={"stock": stock})
    assert level.status_code == 200, level.text
    return sku


async def _order(
    http: httpx.AsyncClient, shop: LocalShop, user: Account, sku: str, token: str, key: str
) -> httpx.Response:
    """Placed by `user`, signed in: the buyer is whoever the token names."""
    return await http.post(
        f"{shop.url('order')}/api/v1/orders",
        headers={"Idempotency-Key": key, **user.headers},
        json={
            "items": [{"sku": sku, "quantity": 2}],
            "payment": {"token": token},
        },
    )


async def _settled(http: httpx.AsyncClient, shop: LocalShop, order_id: str) -> dict[str, Any]:
    async with asyncio.timeout(90):
        while True:
            order = (await http.get(f"{shop.url('order')}/api/v1/orders/{order_id}")).json()
            if order["status"] != "PENDING":
                return dict(order)
            await asyncio.sleep(0.2)


async def _inventory(
    http: httpx.AsyncClient, shop: LocalShop, sku: str, stock: int, reserved: int
) -> dict[str, Any]:
    """Waits until the product service shows `stock` and `reserved` (it learns by events)."""
    async with asyncio.timeout(60):
        while True:
            level = (await http.get(f"{shop.url('product')}/api/v1/inventory/{sku}")).json()
            if (level["stock"], level["reserved"]) == (stock, reserved):
                return dict(level)
            await asyncio.sleep(0.2)


async def _payments(http: httpx.AsyncClient, shop: LocalShop, order_id: str) -> list[Any]:
    response = await http.get(
        f"{shop.url('payment')}/api/v1/payments", params={"order_id": order_id}
    )
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def _trace_ids(engines: dict[str, AsyncEngine], order_id: str) -> dict[str, str]:
    """The trace id of every event this order's saga wrote, by event type."""
    found = {}
    for service, table in (("order", order_outbox), ("payment", payment_outbox)):
        async with engines[service].connect() as conn:
            for row in await conn.execute(
                select(table.c.type, table.c.traceparent).where(table.c.aggregateid == order_id)
            ):
                found[row.type] = row.traceparent.split("-")[1]
    return found


async def test_a_paid_order_completes_in_one_trace(
    shop: LocalShop, http: httpx.AsyncClient, engines: dict[str, AsyncEngine], unique: str
) -> None:
    user, sku = await _user(http, shop, unique), await _product(http, shop, unique, stock=5)
    placed = await _order(http, shop, user, sku, "tok_visa", f"paid-{unique}")
    assert placed.status_code == 201, placed.text
    body = placed.json()
    assert (body["status"], body["total"]) == ("PENDING", "39.80")
    order = await _settled(http, shop, body["order_id"])
    assert (order["status"], order["cancel_reason"]) == ("COMPLETED", None)
    assert await _inventory(http, shop, sku, stock=3, reserved=0)
    [payment] = await _payments(http, shop, body["order_id"])
    assert (payment["status"], payment["amount"], payment["currency"]) == (
        "SUCCEEDED",
        "39.80",
        "EUR",
    )
    # The POST's trace continues through both services and both Kafka hops.
    assert await _trace_ids(engines, body["order_id"]) == {
        "order_created": placed.headers["X-Trace-Id"],
        "payment_succeeded": placed.headers["X-Trace-Id"],
        "order_completed": placed.headers["X-Trace-Id"],
    }
    replay = await _order(http, shop, user, sku, "tok_visa", f"paid-{unique}")
    assert (replay.status_code, replay.json()["order_id"]) == (201, body["order_id"])
    metrics = (await http.get(f"{shop.url('order')}/metrics")).text
    assert 'commerce_saga_outcomes_total{reason="",status="COMPLETED"}' in metrics
    assert 'commerce_consumer_lag{consumer="order.payment-events"' in metrics
    metrics = (await http.get(f"{shop.url('product')}/metrics")).text
    assert 'commerce_events_total{consumer="product.order-events",outcome="processed"}' in metrics


@pytest.mark.parametrize(
    ("token", "cancel_reason", "payment_reason"),
    [
        ("tok_declined", "payment_declined", "declined"),
        ("tok_timeout", "payment_timeout", "timeout"),
    ],
)
async def test_an_unpaid_order_is_cancelled_and_its_stock_given_back(
    shop: LocalShop,
    http: httpx.AsyncClient,
    unique: str,
    token: str,
    cancel_reason: str,
    payment_reason: str,
) -> None:
    user, sku = await _user(http, shop, unique), await _product(http, shop, unique, stock=5)
    placed = await _order(http, shop, user, sku, token, f"unpaid-{unique}")
    assert placed.status_code == 201, placed.text
    order = await _settled(http, shop, placed.json()["order_id"])
    assert (order["status"], order["cancel_reason"]) == ("CANCELLED", cancel_reason)
    assert await _inventory(http, shop, sku, stock=5, reserved=0)
    [payment] = await _payments(http, shop, order["order_id"])
    assert (payment["status"], payment["reason"]) == ("FAILED", payment_reason)


async def test_a_poison_record_is_dead_lettered_and_its_partition_moves_on(
    shop: LocalShop, http: httpx.AsyncClient, stack: Endpoints, unique: str
) -> None:
    user, sku = await _user(http, shop, unique), await _product(http, shop, unique, stock=5)
    key = f"poison-{unique}"
    order_id = order_id_for(user.user_id, key)
    bootstrap = stack["kafka"]["bootstrap_servers"]
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        # Same key as the order about to be placed: same partition, just before its events.
        await producer.send_and_wait(
            shop.topic("order"),
            b"{not json",
            key=order_id.encode(),
            headers=[("id", f"poison-{unique}".encode()), ("eventType", b"order_created")],
        )
    finally:
        await producer.stop()
    placed = await _order(http, shop, user, sku, "tok_visa", key)
    assert placed.status_code == 201, placed.text
    assert (await _settled(http, shop, order_id))["status"] == "COMPLETED"
    assert await _inventory(http, shop, sku, stock=3, reserved=0)

    dlq = AIOKafkaConsumer(
        f"{shop.topic('order')}.dlq",
        bootstrap_servers=bootstrap,
        group_id=f"dlq-reader-{unique}",
        auto_offset_reset="earliest",
    )
    await dlq.start()
    parked: set[str] = set()
    try:
        async with asyncio.timeout(30):
            while len(parked) < 2:
                for records in (await dlq.getmany(timeout_ms=1000)).values():
                    for record in records:
                        headers = {k: (v or b"").decode() for k, v in record.headers}
                        if record.key == order_id.encode():
                            assert headers["dlq-original-topic"] == shop.topic("order")
                            parked.add(headers["dlq-consumer"])
    finally:
        await dlq.stop()
    # Both consumers of the topic parked it; neither stopped.
    assert parked == {"payment.order-events", "product.order-events"}


async def test_a_charge_after_the_deadline_is_refunded(
    shop: LocalShop, http: httpx.AsyncClient, unique: str
) -> None:
    user, sku = await _user(http, shop, unique), await _product(http, shop, unique, stock=5)
    payment = shop.services["payment"]
    payment.stop()  # nobody answers order_created: the order waits for its deadline
    try:
        placed = await _order(http, shop, user, sku, "tok_visa", f"late-{unique}")
        assert placed.status_code == 201, placed.text
        order = await _settled(http, shop, placed.json()["order_id"])
        assert (order["status"], order["cancel_reason"]) == ("CANCELLED", "reservation_expired")
        assert await _inventory(http, shop, sku, stock=5, reserved=0)
    finally:
        payment.start()
        await payment.wait_ready()
    # The payment service comes back, charges order_created, then sees order_cancelled.
    async with asyncio.timeout(60):
        while [p["status"] for p in await _payments(http, shop, order["order_id"])] != ["REFUNDED"]:  # noqa: ASYNC110 - another process writes it
            await asyncio.sleep(0.3)
    final = (await http.get(f"{shop.url('order')}/api/v1/orders/{order['order_id']}")).json()
    assert final["status"] == "CANCELLED"  # the late payment_succeeded moved nothing
    assert json.dumps(final["items"]) == json.dumps(order["items"])
