"""`commerce-product` as a real process: migrate, serve REST and gRPC, stop cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator

import grpc
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from commerce_devstack.endpoints import Endpoints
from commerce_devstack.service_certificates import issue
from commerce_services.rpc.commerce.v1 import inventory_pb2, inventory_pb2_grpc
from commerce_services.rpc.trailers import UNPRICED_SKUS
from tests.stack.access_tokens import STAFF_HEADERS, grpc_channel, verifying_env
from tests.stack.processes import free_ports, output, start_service, stop

COMMAND = [sys.executable, "-m", "commerce_services.product"]


@pytest.fixture
async def product_env(stack: Endpoints, unique: str, jwks_url: str) -> dict[str, str]:
    http_port, grpc_port = free_ports(2)
    topic = f"test.process.order.events.{unique}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack["kafka"]["bootstrap_servers"])
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1), NewTopic(f"{topic}.dlq", 1, 1)])
    finally:
        await admin.close()
    return {
        **os.environ,
        **{f"PRODUCT_{k.upper()}": v for k, v in stack.service_settings("product").items()},
        "PRODUCT_HTTP_PORT": str(http_port),
        "PRODUCT_GRPC_PORT": str(grpc_port),
        "PRODUCT_ORDER_EVENTS_TOPIC": topic,
        "PRODUCT_CONSUMER_GROUP": f"product-{unique}",
        **verifying_env("product", jwks_url),
    }


@pytest.fixture
def product(product_env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    migrate = subprocess.run(
        [*COMMAND, "migrate"], env=product_env, capture_output=True, text=True, timeout=120
    )
    assert migrate.returncode == 0, migrate.stdout + migrate.stderr
    proc = start_service(
        "commerce_services.product", product_env, int(product_env["PRODUCT_HTTP_PORT"])
    )
    yield proc
    stop(proc)


async def test_serves_rest_and_grpc_then_stops_on_sigterm(
    product: subprocess.Popen[str], product_env: dict[str, str], unique: str
) -> None:
    sku = f"PROC-{unique}"
    base = f"http://127.0.0.1:{product_env['PRODUCT_HTTP_PORT']}"
    async with httpx.AsyncClient(base_url=base, timeout=5, headers=STAFF_HEADERS) as http:
        category = (await http.post("/api/v1/categories", json={"name": unique})).json()["id"]
        created = await http.post(
            "/api/v1/products",
            json={
                "title": f"Process mug {unique}",
                "category_ids": [category],
                "primary_category_id": category,
                "variants": [{"sku": sku, "price": {"amount": "12.50", "currency": "EUR"}}],
            },
        )
        assert created.status_code == 201, created.text
        unpriced = f"PROC-NOPRICE-{unique}"
        for stocked in (sku, unpriced):
            stock = await http.put(f"/api/v1/inventory/{stocked}", json={"stock": 3})
            assert stock.status_code == 200
        async with grpc_channel(
            f"127.0.0.1:{product_env['PRODUCT_GRPC_PORT']}", "order"
        ) as channel:
            stub = inventory_pb2_grpc.InventoryServiceStub(channel)

            def reserve(*skus: str) -> inventory_pb2.ReserveStockRequest:
                return inventory_pb2.ReserveStockRequest(
                    order_id=f"proc-{unique}",
                    items=[inventory_pb2.StockLine(sku=s, quantity=2) for s in skus],
                    currency="EUR",
                )

            # Stocked but sold by no product: refused and named, nothing reserved.
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.ReserveStock(reserve(sku, unpriced), timeout=5)
            assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            trailers = dict(refused.value.trailing_metadata() or ())
            assert trailers[UNPRICED_SKUS] == unpriced
            reserved = await stub.ReserveStock(reserve(sku), timeout=5)
        assert reserved.status == inventory_pb2.RESERVATION_STATUS_RESERVED
        assert [(p.sku, p.amount) for p in reserved.prices] == [(sku, "12.50")]
        assert (await http.get(f"/api/v1/inventory/{sku}")).json()["available"] == 1
        assert (await http.get(f"/api/v1/inventory/{unpriced}")).json()["available"] == 3
        assert (await http.get("/openapi.json")).json()["info"]["title"].startswith("commerce")

        # The order completes: its event reaches the service's consumer, the sale is booked.
        producer = AIOKafkaProducer(bootstrap_servers=product_env["PRODUCT_KAFKA_BOOTSTRAP"])
        await producer.start()
        try:
            await producer.send_and_wait(
                product_env["PRODUCT_ORDER_EVENTS_TOPIC"],
                key=f"proc-{unique}".encode(),
                value=json.dumps({"order_id": f"proc-{unique}"}).encode(),
                headers=[("id", str(uuid.uuid4()).encode()), ("eventType", b"order_completed")],
            )
        finally:
            await producer.stop()
        async with asyncio.timeout(60):
            while (await http.get(f"/api/v1/inventory/{sku}")).json()["stock"] != 1:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        assert (await http.get(f"/api/v1/inventory/{sku}")).json()["reserved"] == 0
        ready = await http.get("/health/ready")  # what serving needs: not Kafka
        assert ready.json()["checks"] == {
            "mariadb": "ok",
            "mongodb": "ok",
        }  # not Kafka: see defect 4

    product.send_signal(signal.SIGTERM)
    assert product.wait(timeout=20) == 0
    logged = output(product)
    assert '"level": "INFO"' in logged  # JSON log lines
    assert "Traceback" not in logged


async def test_grpc_refuses_anonymous_callers_and_services_the_method_does_not_name(
    product: subprocess.Popen[str], product_env: dict[str, str], unique: str
) -> None:
    """ReserveStock is the order service's alone: a plaintext caller, a TLS caller without a
    certificate, one with a certificate of another CA, and the payment service are refused."""
    target = f"127.0.0.1:{product_env['PRODUCT_GRPC_PORT']}"
    request = inventory_pb2.ReserveStockRequest(
        order_id=f"intruder-{unique}",
        items=[inventory_pb2.StockLine(sku="ANY-SKU", quantity=1)],
        currency="EUR",
    )
    stranger = issue(["order"])  # a certificate named "order", but not of the services' CA
    callers = {
        "plaintext": (grpc.aio.insecure_channel(target), grpc.StatusCode.UNAVAILABLE),
        "no certificate": (grpc_channel(target, None), grpc.StatusCode.UNAVAILABLE),
        "another CA": (grpc_channel(target, "order", stranger), grpc.StatusCode.UNAVAILABLE),
        "payment": (grpc_channel(target, "payment"), grpc.StatusCode.PERMISSION_DENIED),
    }
    for name, (channel, code) in callers.items():
        async with channel:
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await inventory_pb2_grpc.InventoryServiceStub(channel).ReserveStock(
                    request, timeout=5
                )
        assert refused.value.code() == code, name
    # The order service itself gets an answer (the SKU is unpriced: not a refusal of the caller).
    async with grpc_channel(target, "order") as channel:
        with pytest.raises(grpc.aio.AioRpcError) as answered:
            await inventory_pb2_grpc.InventoryServiceStub(channel).ReserveStock(request, timeout=5)
    assert answered.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_missing_secret_is_a_clear_error(product_env: dict[str, str]) -> None:
    env = {k: v for k, v in product_env.items() if k != "PRODUCT_DB_PASSWORD"}
    done = subprocess.run([*COMMAND, "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "db_password" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
