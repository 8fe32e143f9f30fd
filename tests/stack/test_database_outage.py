"""A database outage answers 503 `dependency_unavailable` with Retry-After, in the error shape,
never a 500 and never a stack trace; the service answers again once the database is back; and
an order retried with the same Idempotency-Key after the 503 is placed once.

The outage is real but private: each service reaches its database through a TCP proxy of the
test's own, which is cut (every connection closed, nothing listening: refused) while a request
waits for the database's answer, so the loss happens mid-way; the shared servers keep running.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Coroutine
from datetime import timedelta
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pymongo import AsyncMongoClient
from pymongo.uri_parser import parse_uri
from sqlalchemy.ext.asyncio import create_async_engine

from commerce_devstack.endpoints import Endpoints
from commerce_devstack.local_shop import ServiceProcess
from commerce_services.db.engine import service_engine
from commerce_services.db.settings import DatabaseSettings
from commerce_services.order import migrations as order_migrations
from commerce_services.order.http_api import create_app as order_app
from commerce_services.order.inventory_client import GrpcReservations
from commerce_services.order.placement import OrderPlacement
from commerce_services.order.store import OrderStore
from commerce_services.order.users_client import GrpcUsers
from commerce_services.product.inventory.grpc_service import InventoryServicer
from commerce_services.product.inventory.store import InventoryStore
from commerce_services.rpc.commerce.v1 import inventory_pb2_grpc, users_pb2_grpc
from commerce_services.runtime.clock import utc_now
from commerce_services.user.grpc_service import UserServicer
from commerce_services.user.store import UserStore
from tests.stack.access_tokens import (
    STAFF_HEADERS,
    VERIFIER,
    customer,
    signing_env,
    verifying_env,
)
from tests.stack.catalog_prices import catalog_prices
from tests.stack.conftest import TTL
from tests.stack.error_shape import api_error
from tests.stack.migrations import migrator as _migrator
from tests.stack.processes import free_ports
from tests.stack.tcp_proxy import TcpProxy

PASSWORD = "outage password 1"


def _unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert api_error(response)["code"] == "dependency_unavailable"
    assert response.headers["Retry-After"].isdigit()


async def _in_flight_then_cut(
    proxy: TcpProxy, request: Coroutine[Any, Any, httpx.Response]
) -> httpx.Response:
    """Cuts the database off while `request` waits for its answer."""
    proxy.hold()
    task = asyncio.ensure_future(request)
    await asyncio.sleep(0.5)  # the request reached the database and waits for its answer
    assert not task.done()
    await proxy.cut()
    return await task


async def _answers_again(http: httpx.AsyncClient, path: str, params: dict[str, str]) -> None:
    async with asyncio.timeout(60):
        while (await http.get(path, params=params)).status_code != 200:  # noqa: ASYNC110
            await asyncio.sleep(0.5)


@pytest.fixture
async def proxy_to_mariadb(stack: Endpoints) -> AsyncIterator[TcpProxy]:
    mariadb = stack["mariadb"]
    proxy = TcpProxy(mariadb["host"], int(mariadb["port"]))
    await proxy.start()
    yield proxy
    await proxy.close()


@pytest.fixture
async def proxy_to_ferretdb(stack: Endpoints) -> AsyncIterator[TcpProxy]:
    host, port = parse_uri(stack["ferretdb"]["uri"])["nodelist"][0]
    proxy = TcpProxy(host, port)
    await proxy.start()
    yield proxy
    await proxy.close()


async def _started(process: ServiceProcess) -> ServiceProcess:
    process.start()
    await process.wait_ready()  # the proxy serves it from this event loop meanwhile
    return process


async def test_mariadb_outage_is_503_with_retry_after_then_the_service_answers_again(
    stack: Endpoints, proxy_to_mariadb: TcpProxy, unique: str, tmp_path: Path, jwks_url: str
) -> None:
    (http_port,) = free_ports(1)
    topic = f"test.outage.order.events.{unique}"
    admin = AIOKafkaAdminClient(bootstrap_servers=stack["kafka"]["bootstrap_servers"])
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1), NewTopic(f"{topic}.dlq", 1, 1)])
    finally:
        await admin.close()
    env = {
        **os.environ,
        **{f"PAYMENT_{k.upper()}": v for k, v in stack.service_settings("payment").items()},
        "PAYMENT_DB_HOST": "127.0.0.1",
        "PAYMENT_DB_PORT": str(proxy_to_mariadb.port),
        "PAYMENT_HTTP_PORT": str(http_port),
        "PAYMENT_ORDER_EVENTS_TOPIC": topic,
        "PAYMENT_CONSUMER_GROUP": f"payment-outage-{unique}",
        **verifying_env("payment", jwks_url),
    }
    log = tmp_path / "payment.log"
    payment = await _started(ServiceProcess("payment", http_port, 0, env, log))
    params = {"order_id": f"outage-{unique}"}
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{http_port}", timeout=30, headers=STAFF_HEADERS
        ) as http:
            assert (await http.get("/api/v1/payments", params=params)).json() == {"items": []}

            lost = await _in_flight_then_cut(
                proxy_to_mariadb, http.get("/api/v1/payments", params=params)
            )
            _unavailable(lost)
            refused = await http.get("/api/v1/payments", params=params)  # nothing listens
            _unavailable(refused)

            await proxy_to_mariadb.restore()
            await _answers_again(http, "/api/v1/payments", params)
    finally:
        payment.stop()
    # Logged as what it is, one line, not as an unhandled error with its stack trace.
    assert "dependency unavailable on GET /api/v1/payments" in log.read_text()


async def test_mongodb_outage_is_503_with_retry_after_then_the_service_answers_again(
    stack: Endpoints, proxy_to_ferretdb: TcpProxy, unique: str, tmp_path: Path
) -> None:
    http_port, grpc_port = free_ports(2)
    database = f"users_outage_{unique}"
    env = {
        **os.environ,
        **{f"USER_{k.upper()}": v for k, v in stack.service_settings("user").items()},
        "USER_MONGO_URI": f"mongodb://127.0.0.1:{proxy_to_ferretdb.port}/",
        "USER_MONGO_DATABASE": database,
        "USER_HTTP_PORT": str(http_port),
        "USER_GRPC_PORT": str(grpc_port),
        **signing_env(),
    }
    user_service = await _started(
        ServiceProcess("user", http_port, grpc_port, env, tmp_path / "user.log")
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{http_port}", timeout=30) as http:
            created = await http.post(
                "/api/v1/users",
                json={"email": "outage@example.com", "name": "Outage", "password": PASSWORD},
            )
            assert created.status_code == 201, created.text
            http.headers.update(customer(created.json()["user_id"]))
            path = f"/api/v1/users/{created.json()['user_id']}"

            _unavailable(await _in_flight_then_cut(proxy_to_ferretdb, http.get(path)))
            _unavailable(await http.get(path))  # nothing listens: server selection times out
            _unavailable(
                await http.post(
                    "/api/v1/users",
                    json={"email": "b@example.com", "name": "B", "password": PASSWORD},
                )
            )

            await proxy_to_ferretdb.restore()
            await _answers_again(http, path, {})
    finally:
        user_service.stop()
        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack["ferretdb"]["uri"])
        await mongo.drop_database(database)
        await mongo.close()


async def test_an_order_retried_after_a_503_is_placed_once(
    stack: Endpoints, proxy_to_mariadb: TcpProxy, store: InventoryStore, sku: str, unique: str
) -> None:
    settings = DatabaseSettings.from_values(stack.service_settings("order"))
    order_migrations.upgrade(_migrator(stack, "order"))
    # The order service's own engine settings, its database behind the proxy.
    engine = service_engine(
        DatabaseSettings.from_values(
            {
                **stack.service_settings("order"),
                "db_host": "127.0.0.1",
                "db_port": str(proxy_to_mariadb.port),
            }
        )
    )
    direct = create_async_engine(settings.database_url())
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack["ferretdb"]["uri"])
    users = UserStore(mongo, f"outage_{unique}", utc_now)
    await users.ensure_indexes()
    server = grpc.aio.server()
    inventory_pb2_grpc.add_InventoryServiceServicer_to_server(
        InventoryServicer(store, catalog_prices("4.50", lambda s: s == sku), TTL), server
    )
    users_pb2_grpc.add_UserServiceServicer_to_server(UserServicer(users), server)
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}")
    await server.start()

    orders = OrderStore(engine, utc_now, timedelta(minutes=15))
    placement = OrderPlacement(
        GrpcUsers(users_pb2_grpc.UserServiceStub(channel), 3.0),
        GrpcReservations(inventory_pb2_grpc.InventoryServiceStub(channel), 3.0),
        orders,
        timedelta(seconds=30),
    )
    app = order_app(placement, orders, "EUR", {}, VERIFIER)
    try:
        await store.set_stock(sku, 5)
        user = await users.create(f"{unique}@example.com", "Buyer")
        body = {"items": [{"sku": sku, "quantity": 2}], "payment": {"token": "tok_visa"}}
        key = {"Idempotency-Key": f"outage-{unique}", **customer(user.user_id)}
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://order.test"
        ) as http:
            lost = await _in_flight_then_cut(
                proxy_to_mariadb, http.post("/api/v1/orders", json=body, headers=key)
            )
            _unavailable(lost)
            _unavailable(await http.post("/api/v1/orders", json=body, headers=key))
            level = await store.stock_level(sku)
            assert level is not None
            assert level.reserved == 0  # refused before anything was held

            await proxy_to_mariadb.restore()
            placed = await http.post("/api/v1/orders", json=body, headers=key)
            assert placed.status_code == 201, placed.text
            again = await http.post("/api/v1/orders", json=body, headers=key)
            assert again.json()["order_id"] == placed.json()["order_id"]
        listed = await OrderStore(direct, utc_now, timedelta(minutes=15)).for_user(user.user_id)
        assert [o.order_id for o in listed] == [placed.json()["order_id"]]
        level = await store.stock_level(sku)
        assert level is not None
        assert level.reserved == 2
    finally:
        await channel.close()
        await server.stop(grace=None)
        await mongo.drop_database(f"outage_{unique}")
        await mongo.close()
        await engine.dispose()
        await direct.dispose()
