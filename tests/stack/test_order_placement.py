"""Placing orders over real gRPC to the user and product services: nothing is reserved when the
user or the stock says no; concurrent requests with one Idempotency-Key never release what the
winner reserved; a failed write releases (or, after an outage, lets a retry continue); the
sweep releases the stock of placements whose owner died."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import grpc
import httpx
import pytest
from pymongo import AsyncMongoClient
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from commerce_devstack.endpoints import Endpoints
from commerce_services.db.settings import DatabaseSettings
from commerce_services.order import migrations as order_migrations
from commerce_services.order.http_api import create_app
from commerce_services.order.inventory_client import GrpcReservations
from commerce_services.order.model import (
    AttemptRolledBack,
    IdempotencyConflict,
    OrderLine,
    PlacementInProgress,
    request_hash,
)
from commerce_services.order.placement import OrderPlacement
from commerce_services.order.ports import (
    DependencyUnavailable,
    OutOfStock,
    UnknownSku,
    UserRejected,
)
from commerce_services.order.store import Claim, Order, OrderStore
from commerce_services.order.users_client import GrpcUsers
from commerce_services.product.inventory.grpc_service import InventoryServicer
from commerce_services.product.inventory.store import InventoryStore
from commerce_services.rpc.commerce.v1 import inventory_pb2_grpc, users_pb2_grpc
from commerce_services.runtime.clock import utc_now
from commerce_services.user.grpc_service import UserServicer
from commerce_services.user.store import UserStore
from tests.stack.access_tokens import STAFF_HEADERS, VERIFIER, customer
from tests.stack.catalog_prices import catalog_prices
from tests.stack.conftest import TTL, Clock, confirm
from tests.stack.error_shape import api_error
from tests.stack.migrations import migrator as _migrator
from tests.stack.processes import free_ports

LEASE = timedelta(seconds=30)


class BrokenOrderStore(OrderStore):
    """Fails when writing the order, after the stock was reserved, with `error`."""

    def __init__(self, engine: AsyncEngine, error: Exception) -> None:
        super().__init__(engine, utc_now, timedelta(minutes=15))
        self._error = error

    async def place(
        self, claim: Claim, lines: tuple[OrderLine, ...], currency: str, payment_token: str
    ) -> Order:
        raise self._error


@dataclass(frozen=True)
class Wired:
    users: UserStore
    orders: OrderStore
    channel: grpc.aio.Channel
    order_engine: AsyncEngine


@pytest.fixture
async def wired(
    stack: Endpoints, store: InventoryStore, clock: Clock, unique: str
) -> AsyncIterator[Wired]:
    settings = DatabaseSettings.from_values(stack.service_settings("order"))
    order_migrations.upgrade(_migrator(stack, "order"))
    engine = create_async_engine(settings.database_url())
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack["ferretdb"]["uri"])
    users = UserStore(mongo, f"placement_{unique}", clock)
    await users.ensure_indexes()
    server = grpc.aio.server()
    inventory_pb2_grpc.add_InventoryServiceServicer_to_server(
        InventoryServicer(store, catalog_prices("9.99", lambda sku: sku != "NO-PRICE"), TTL),
        server,
    )
    users_pb2_grpc.add_UserServiceServicer_to_server(UserServicer(users), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield Wired(users, OrderStore(engine, utc_now, timedelta(minutes=15)), channel, engine)
    await channel.close()
    await server.stop(grace=None)
    await mongo.drop_database(f"placement_{unique}")
    await mongo.close()
    await engine.dispose()


def _placement(
    channel: grpc.aio.Channel,
    orders: OrderStore,
    sku: str,
    inventory: grpc.aio.Channel | None = None,
    timeout_s: float = 3.0,
) -> OrderPlacement:
    return OrderPlacement(
        GrpcUsers(users_pb2_grpc.UserServiceStub(channel), timeout_s),
        GrpcReservations(inventory_pb2_grpc.InventoryServiceStub(inventory or channel), timeout_s),
        orders,
        LEASE,
    )


async def _reserved(store: InventoryStore, sku: str) -> int:
    level = await store.stock_level(sku)
    assert level is not None
    return level.reserved


async def test_no_reservation_when_user_or_stock_or_price_says_no(
    wired: Wired,
    store: InventoryStore,
    clock: Clock,
    sku: str,
) -> None:
    users, orders, channel = wired.users, wired.orders, wired.channel
    placement = _placement(channel, orders, sku)
    await store.set_stock(sku, 3)
    user = await users.create(f"{sku.lower()}@example.com", "Buyer")

    with pytest.raises(OutOfStock) as short:
        await placement.place(user.user_id, "k1", [(sku, 4)], "EUR", "tok_visa")
    assert short.value.skus == [sku]
    with pytest.raises(UnknownSku):
        await placement.place(user.user_id, "k2", [(sku, 1), ("NO-PRICE", 1)], "EUR", "tok_visa")
    with pytest.raises(UserRejected) as missing:
        await placement.place("f" * 32, "k3", [(sku, 1)], "EUR", "tok_visa")
    assert missing.value.code == "user_not_found"
    clock.now += timedelta(days=400)
    await users.mark_dormant()
    with pytest.raises(UserRejected) as dormant:
        await placement.place(user.user_id, "k4", [(sku, 1)], "EUR", "tok_visa")
    assert dormant.value.code == "user_dormant"
    assert await _reserved(store, sku) == 0


async def test_a_failed_order_write_releases_the_reservation(
    wired: Wired,
    store: InventoryStore,
    sku: str,
) -> None:
    users, channel = wired.users, wired.channel
    await store.set_stock(sku, 3)
    user = await users.create(f"{sku.lower()}@example.com", "Buyer")
    broken = BrokenOrderStore(wired.order_engine, ValueError("a bug in writing the order"))
    with pytest.raises(ValueError, match="a bug"):
        await _placement(channel, broken, sku).place(
            user.user_id, "k", [(sku, 2)], "EUR", "tok_visa"
        )
    assert await _reserved(store, sku) == 0  # released, not leaked
    # The key's order id is spent: a retry is told to use a new key, and reserves nothing.
    with pytest.raises(AttemptRolledBack):
        await _placement(channel, wired.orders, sku).place(
            user.user_id, "k", [(sku, 2)], "EUR", "tok_visa"
        )
    assert await _reserved(store, sku) == 0


async def test_an_order_database_outage_keeps_the_stock_for_a_retry_with_the_same_key(
    wired: Wired,
    store: InventoryStore,
    sku: str,
) -> None:
    users, channel = wired.users, wired.channel
    await store.set_stock(sku, 3)
    user = await users.create(f"{sku.lower()}@example.com", "Buyer")
    broken = BrokenOrderStore(wired.order_engine, ConnectionError("order database went away"))
    with pytest.raises(DependencyUnavailable):
        await _placement(channel, broken, sku).place(
            user.user_id, "k", [(sku, 2)], "EUR", "tok_visa"
        )
    assert await _reserved(store, sku) == 2  # held for the retry, not released
    order = await _placement(channel, wired.orders, sku).place(
        user.user_id, "k", [(sku, 2)], "EUR", "tok_visa"
    )
    assert order.status == "PENDING"
    assert await _reserved(store, sku) == 2  # the same reservation, not a second one


async def test_a_retry_refused_after_an_outage_releases_what_the_first_attempt_reserved(
    wired: Wired,
    store: InventoryStore,
    clock: Clock,
    sku: str,
) -> None:
    users, channel = wired.users, wired.channel
    await store.set_stock(sku, 3)
    user = await users.create(f"{sku.lower()}@example.com", "Buyer")
    broken = BrokenOrderStore(wired.order_engine, ConnectionError("order database went away"))
    with pytest.raises(DependencyUnavailable):
        await _placement(channel, broken, sku).place(
            user.user_id, "k", [(sku, 2)], "EUR", "tok_visa"
        )
    assert await _reserved(store, sku) == 2  # held for a retry
    clock.now += timedelta(days=400)
    await users.mark_dormant()
    with pytest.raises(UserRejected):
        await _placement(channel, wired.orders, sku).place(
            user.user_id, "k", [(sku, 2)], "EUR", "tok_visa"
        )
    assert await _reserved(store, sku) == 0  # the continued claim was abandoned: released
    with pytest.raises(AttemptRolledBack):
        await _placement(channel, wired.orders, sku).place(
            user.user_id, "k", [(sku, 2)], "EUR", "tok_visa"
        )


async def test_concurrent_requests_with_one_key_and_different_bodies_never_release_the_winner(
    wired: Wired,
    store: InventoryStore,
    sku: str,
) -> None:
    """Issue 13, defect 1: the requests that lost with 409 released the winner's reservation,
    so paid orders never decremented the stock."""
    await store.set_stock(sku, 50)
    user = await wired.users.create(f"{sku.lower()}@example.com", "Buyer")
    placement = _placement(wired.channel, wired.orders, sku)
    tokens = [f"tok_visa_{n}" for n in range(8)]
    results = await asyncio.gather(
        *(placement.place(user.user_id, "race", [(sku, 3)], "EUR", t) for t in tokens),
        return_exceptions=True,
    )
    placed = [r for r in results if isinstance(r, Order)]
    refused = [r for r in results if isinstance(r, IdempotencyConflict | PlacementInProgress)]
    assert len(placed) == 1, results
    assert len(refused) == len(tokens) - 1, results
    assert await _reserved(store, sku) == 3  # the winner's reservation is intact
    reservation = await confirm(store, placed[0].order_id)  # and the sale can go through
    assert [(i.sku, i.quantity) for i in reservation.items] == [(sku, 3)]


async def test_the_sweep_releases_the_stock_of_a_placement_whose_owner_died(
    wired: Wired,
    store: InventoryStore,
    sku: str,
) -> None:
    await store.set_stock(sku, 3)
    user = await wired.users.create(f"{sku.lower()}@example.com", "Buyer")
    clock = Clock()
    orders = OrderStore(wired.order_engine, clock, timedelta(minutes=15))
    placement = _placement(wired.channel, orders, sku)
    # A process claims the key and reserves, then dies before writing the order.
    claimed = await orders.claim(
        user.user_id, "crash", request_hash(user.user_id, [(sku, 2)], "tok_visa"), LEASE
    )
    assert isinstance(claimed, Claim)
    await store.reserve(claimed.order_id, [(sku, 2)], TTL)
    await placement.sweep()
    assert await _reserved(store, sku) == 2  # within its lease: still its owner's
    clock.now += LEASE + timedelta(seconds=1)
    await placement.sweep()
    assert await _reserved(store, sku) == 2  # a retry with its key may still continue it
    clock.now += LEASE
    assert claimed.order_id in await placement.sweep()
    assert await _reserved(store, sku) == 0
    assert claimed.order_id not in await placement.sweep()  # once
    with pytest.raises(AttemptRolledBack):
        await placement.place(user.user_id, "crash", [(sku, 2)], "EUR", "tok_visa")


async def test_a_retry_after_the_lease_continues_a_placement_whose_owner_died(
    wired: Wired,
    store: InventoryStore,
    sku: str,
) -> None:
    await store.set_stock(sku, 3)
    user = await wired.users.create(f"{sku.lower()}@example.com", "Buyer")
    clock = Clock()
    orders = OrderStore(wired.order_engine, clock, timedelta(minutes=15))
    placement = _placement(wired.channel, orders, sku)
    claimed = await orders.claim(
        user.user_id, "died", request_hash(user.user_id, [(sku, 2)], "tok_visa"), LEASE
    )
    assert isinstance(claimed, Claim)
    await store.reserve(claimed.order_id, [(sku, 2)], TTL)
    with pytest.raises(PlacementInProgress):  # its owner may still be at work
        await placement.place(user.user_id, "died", [(sku, 2)], "EUR", "tok_visa")
    clock.now += LEASE + timedelta(seconds=1)
    order = await placement.place(user.user_id, "died", [(sku, 2)], "EUR", "tok_visa")
    assert order.order_id == claimed.order_id
    assert await _reserved(store, sku) == 2
    # The dead owner, were it to come back, can no longer write or release anything.
    assert not await orders.abandon(claimed)


async def test_replays_reserve_once_and_conflicts_change_nothing(
    wired: Wired,
    store: InventoryStore,
    sku: str,
) -> None:
    users, orders, channel = wired.users, wired.orders, wired.channel
    placement = _placement(channel, orders, sku)
    await store.set_stock(sku, 5)
    user = await users.create(f"{sku.lower()}@example.com", "Buyer")
    first = await placement.place(user.user_id, "same", [(sku, 2)], "EUR", "tok_visa")
    again = await placement.place(user.user_id, "same", [(sku, 2)], "EUR", "tok_visa")
    assert again.order_id == first.order_id
    with pytest.raises(IdempotencyConflict):
        await placement.place(user.user_id, "same", [(sku, 1)], "EUR", "tok_visa")
    assert await _reserved(store, sku) == 2


async def _ok() -> None:
    return None


@pytest.fixture
async def order_api(wired: Wired, sku: str) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        _placement(wired.channel, wired.orders, sku),
        wired.orders,
        "EUR",
        {"mariadb": _ok},
        VERIFIER,
    )
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://order.test"
    ) as client:
        yield client


async def test_rest_place_replay_conflict_out_of_stock_and_read(
    order_api: httpx.AsyncClient, wired: Wired, store: InventoryStore, sku: str
) -> None:
    await store.set_stock(sku, 3)
    user = await wired.users.create(f"{sku.lower()}@example.com", "Buyer")
    order_api.headers.update(customer(user.user_id))
    body = {"items": [{"sku": sku, "quantity": 2}], "payment": {"token": "tok_visa"}}
    placed = await order_api.post("/api/v1/orders", json=body, headers={"Idempotency-Key": "a"})
    assert placed.json()["user_id"] == user.user_id
    assert placed.status_code == 201
    order = placed.json()
    assert (order["status"], order["total"], order["items"][0]["amount"]) == (
        "PENDING",
        "19.98",
        "19.98",
    )
    assert datetime.fromisoformat(order["created_at"]).utcoffset() == timedelta(0)  # UTC
    replay = await order_api.post("/api/v1/orders", json=body, headers={"Idempotency-Key": "a"})
    assert replay.json()["order_id"] == order["order_id"]
    conflict = await order_api.post(
        "/api/v1/orders",
        json={**body, "items": [{"sku": sku, "quantity": 1}]},
        headers={"Idempotency-Key": "a"},
    )
    assert (conflict.status_code, api_error(conflict)["code"]) == (409, "idempotency_conflict")
    short = await order_api.post("/api/v1/orders", json=body, headers={"Idempotency-Key": "b"})
    assert (short.status_code, api_error(short)["code"]) == (409, "out_of_stock")
    assert short.json()["error"]["details"] == {"skus": [sku]}
    assert await _reserved(store, sku) == 2  # only the first order holds stock
    unpriced = await order_api.post(
        "/api/v1/orders",
        json={**body, "items": [{"sku": "NO-PRICE", "quantity": 1}]},
        headers={"Idempotency-Key": "c"},
    )
    assert unpriced.status_code == 422
    error = api_error(unpriced)
    assert (error["code"], error["message"], error["details"]) == (
        "unknown_sku",
        "no price in EUR for NO-PRICE",  # unknown, or not sold in the shop's currency
        {"skus": ["NO-PRICE"], "currency": "EUR"},
    )

    got = await order_api.get(f"/api/v1/orders/{order['order_id']}")
    assert got.json() == order
    listed = await order_api.get("/api/v1/orders")
    assert [o["order_id"] for o in listed.json()["items"]] == [order["order_id"]]
    # Another customer neither reads it nor lists this buyer's orders; staff do both.
    stranger = customer(uuid.uuid4().hex)
    other = await order_api.get(f"/api/v1/orders/{order['order_id']}", headers=stranger)
    assert (other.status_code, api_error(other)["code"]) == (404, "not_found")
    theirs = await order_api.get(
        "/api/v1/orders", params={"user_id": user.user_id}, headers=stranger
    )
    assert (theirs.status_code, api_error(theirs)["code"]) == (404, "not_found")
    by_staff = await order_api.get(
        "/api/v1/orders", params={"user_id": user.user_id}, headers=STAFF_HEADERS
    )
    assert [o["order_id"] for o in by_staff.json()["items"]] == [order["order_id"]]


# Each body's "buyer" is who signs the request (taken out of the body before it is sent).
@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        (
            {
                "buyer": "a" * 32,
                "items": [{"sku": "A", "quantity": 1}],
                "payment": {"token": "t"},
            },
            {},
            400,
            "idempotency_key_required",
        ),
        (
            {"buyer": "a" * 32, "items": [], "payment": {"token": "t"}},
            {"Idempotency-Key": "k"},
            422,
            "validation_failed",
        ),
        (
            {
                "buyer": "a" * 32,
                "items": [{"sku": "A", "quantity": 0}],
                "payment": {"token": "t"},
            },
            {"Idempotency-Key": "k"},
            422,
            "validation_failed",
        ),
        (
            {
                "buyer": "a" * 32,
                "items": [{"sku": "bad sku", "quantity": 1}],
                "payment": {"token": "t"},
            },
            {"Idempotency-Key": "k"},
            422,
            "validation_failed",
        ),
        (
            {
                "buyer": "a" * 32,
                "items": [{"sku": "A", "quantity": "1"}],
                "payment": {"token": "t"},
            },
            {"Idempotency-Key": "k"},
            422,
            "validation_failed",
        ),
        (
            {"buyer": "a" * 32, "items": [{"sku": "A", "quantity": 1}]},
            {"Idempotency-Key": "k"},
            422,
            "validation_failed",
        ),
        (
            {
                "buyer": "f" * 32,
                "items": [{"sku": "A", "quantity": 1}],
                "payment": {"token": "t"},
            },
            {"Idempotency-Key": "k"},
            422,
            "user_not_found",
        ),
        # The buyer is the token's subject: naming one in the body is refused.
        (
            {
                "buyer": "a" * 32,
                "user_id": "b" * 32,
                "items": [{"sku": "A", "quantity": 1}],
                "payment": {"token": "t"},
            },
            {"Idempotency-Key": "k"},
            422,
            "validation_failed",
        ),
    ],
)
async def test_rest_bad_orders_get_4xx_and_reserve_nothing(
    order_api: httpx.AsyncClient,
    store: InventoryStore,
    sku: str,
    body: dict[str, Any],
    headers: dict[str, str],
    status: int,
    code: str,
) -> None:
    await store.set_stock(sku, 3)
    body = dict(body)
    buyer = customer(body.pop("buyer"))
    response = await order_api.post("/api/v1/orders", json=body, headers={**headers, **buyer})
    assert (response.status_code, api_error(response)["code"]) == (status, code)
    assert await _reserved(store, sku) == 0
    missing = await order_api.get(f"/api/v1/orders/{'0' * 32}", headers=buyer)
    assert (missing.status_code, api_error(missing)["code"]) == (404, "not_found")


async def test_an_unreachable_service_is_503_and_reserves_nothing(
    wired: Wired, store: InventoryStore, sku: str
) -> None:
    await store.set_stock(sku, 3)
    user = await wired.users.create(f"{sku.lower()}@example.com", "Buyer")
    (dead_port,) = free_ports(1)
    dead = grpc.aio.insecure_channel(f"127.0.0.1:{dead_port}")  # nothing listens there

    placement = OrderPlacement(
        GrpcUsers(users_pb2_grpc.UserServiceStub(wired.channel), 1.0),
        GrpcReservations(inventory_pb2_grpc.InventoryServiceStub(dead), 1.0),
        wired.orders,
        LEASE,
    )
    app = create_app(placement, wired.orders, "EUR", {"mariadb": _ok}, VERIFIER)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://order.test"
    ) as client:
        response = await client.post(
            "/api/v1/orders",
            headers={"Idempotency-Key": "k", **customer(user.user_id)},
            json={
                "items": [{"sku": sku, "quantity": 1}],
                "payment": {"token": "tok_visa"},
            },
        )
    await dead.close()
    assert (response.status_code, api_error(response)["code"]) == (503, "dependency_unavailable")
    assert await _reserved(store, sku) == 0
    assert await wired.orders.for_user(user.user_id) == []
