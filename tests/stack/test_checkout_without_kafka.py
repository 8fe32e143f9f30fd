"""Issue 13, defect 4: a Kafka outage took checkout down (the order service's readiness
included Kafka, and it could not start without it), although placing an order needs only
MariaDB and gRPC: the outbox keeps the event until Kafka is back.

The order process here is given a Kafka address where nothing listens, as in an outage that
began before it started; the other services and the stack are the real ones."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from commerce_devstack.endpoints import Endpoints
from commerce_devstack.local_shop import LocalShop, free_ports, local_shop
from commerce_devstack.settings import StackSettings
from commerce_services.db.settings import DatabaseSettings
from commerce_services.order.tables import outbox


@pytest.fixture(scope="module")
async def shop_without_kafka(stack: Endpoints) -> AsyncIterator[LocalShop]:
    (nothing,) = free_ports(1)
    # Generous gRPC deadlines: what is tested is Kafka's absence, not a loaded machine's speed.
    overrides = {
        "ORDER_KAFKA_BOOTSTRAP": f"127.0.0.1:{nothing}",
        "ORDER_RPC_TIMEOUT_S": "10",
        "ORDER_PLACEMENT_LEASE_S": "60",
    }
    prefix = f"nokafka{uuid.uuid4().hex[:8]}"
    async with local_shop(stack, StackSettings().state_dir, prefix, overrides) as shop:
        yield shop


async def test_an_order_is_placed_and_its_event_kept_while_kafka_is_away(
    shop_without_kafka: LocalShop, stack: Endpoints, unique: str
) -> None:
    shop = shop_without_kafka
    async with httpx.AsyncClient(timeout=15) as http:
        ready = await http.get(f"{shop.url('order')}/health/ready")
        assert ready.status_code == 200, ready.text
        assert "kafka" not in ready.json()["checks"]
        user = await shop.customer(http, f"nokafka-{unique}")
        http.headers.update((await shop.staff(http)).headers)
        category = await http.post(
            f"{shop.url('product')}/api/v1/categories", json={"name": f"nokafka-{unique}"}
        )
        sku = f"NOKAFKA-{unique}".upper()
        product = await http.post(
            f"{shop.url('product')}/api/v1/products",
            json={
                "title": f"Kettle {unique}",
                "description": "Boils water",
                "brand": "Acme",
                "category_ids": [category.json()["id"]],
                "primary_category_id": category.json()["id"],
                "variants": [{"sku": sku, "price": {"amount": "30.00", "currency": "EUR"}}],
            },
        )
        assert product.status_code == 201, product.text
        stocked = await http.put(f"{shop.url('product')}/api/v1/inventory/{sku}", json={"stock": 5})
        assert stocked.status_code == 200, stocked.text
        placed = await http.post(
            f"{shop.url('order')}/api/v1/orders",
            headers={"Idempotency-Key": f"nokafka-{unique}", **user.headers},
            json={
                "items": [{"sku": sku, "quantity": 1}],
                "payment": {"token": "tok_visa"},
            },
        )
    assert placed.status_code == 201, placed.text
    engine = create_async_engine(
        DatabaseSettings.from_values(stack.service_settings("order")).database_url()
    )
    try:
        async with engine.connect() as conn:
            kept = await conn.scalar(
                select(func.count())
                .select_from(outbox)
                .where(
                    outbox.c.aggregateid == placed.json()["order_id"],
                    outbox.c.type == "order_created",
                )
            )
    finally:
        await engine.dispose()
    assert kept == 1  # the event waits in the outbox for the relay, not lost
