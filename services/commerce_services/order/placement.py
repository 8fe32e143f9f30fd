"""Placing an order: validate the user, reserve the stock, then write the order and its event.

The stock is reserved (gRPC, product service) before the order row exists, under an order id
derived from the Idempotency-Key, so a retried request finds its reservation instead of making
a second one. If anything fails after the reservation, it is released before the error is
returned; should even the release fail, the product service's expiry releases it later. Every
call carries a deadline.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal

import grpc

from commerce_services.order.model import OrderLine, order_id_for
from commerce_services.order.store import Order, OrderStore
from commerce_services.rpc.commerce.v1 import (
    inventory_pb2,
    inventory_pb2_grpc,
    users_pb2,
    users_pb2_grpc,
)

log = logging.getLogger(__name__)

OUT_OF_STOCK_METADATA = "commerce-out-of-stock"
PriceLookup = Callable[[list[str]], Awaitable[dict[str, Decimal]]]


class UserRejected(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code  # "user_not_found" or "user_dormant"


class OutOfStock(Exception):
    def __init__(self, skus: list[str]) -> None:
        super().__init__(f"insufficient stock for {', '.join(skus)}")
        self.skus = skus


class UnknownSku(Exception):
    def __init__(self, skus: list[str]) -> None:
        super().__init__(f"no price for {', '.join(skus)}")
        self.skus = skus


class AttemptRolledBack(Exception):
    """An earlier attempt under this Idempotency-Key reserved and was rolled back (its write
    failed, or a call timed out and the reservation was released); the order id it derives is
    spent, so the client must send a new key."""


class InvalidItems(Exception):
    """The product service refused the items as malformed."""


class DependencyUnavailable(Exception):
    """A service the placement needs did not answer in time; retrying with the same
    Idempotency-Key is safe."""


_UNAVAILABLE = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)


class OrderPlacement:
    def __init__(
        self,
        users: users_pb2_grpc.UserServiceAsyncStub,
        inventory: inventory_pb2_grpc.InventoryServiceAsyncStub,
        store: OrderStore,
        prices: PriceLookup,
        rpc_timeout_s: float = 3.0,
    ) -> None:
        self._users = users
        self._inventory = inventory
        self._store = store
        self._prices = prices
        self._timeout = rpc_timeout_s

    async def place(
        self,
        user_id: str,
        idempotency_key: str,
        items: list[tuple[str, int]],
        currency: str,
        payment_token: str,
    ) -> Order:
        order_id = order_id_for(user_id, idempotency_key)
        if await self._store.exists(order_id):
            # A replay: the store compares the request and returns the order, or refuses.
            return await self._store.place(
                user_id, idempotency_key, await self._lines(items), currency, payment_token
            )
        await self._validate_user(user_id)
        lines = await self._lines(items)
        await self._reserve(order_id, items)
        try:
            return await self._store.place(user_id, idempotency_key, lines, currency, payment_token)
        except BaseException:
            await self._release(order_id)
            raise

    async def _lines(self, items: list[tuple[str, int]]) -> tuple[OrderLine, ...]:
        prices = await self._prices([sku for sku, _ in items])
        missing = sorted({sku for sku, _ in items} - set(prices))
        if missing:
            raise UnknownSku(missing)
        return tuple(OrderLine(sku, quantity, prices[sku]) for sku, quantity in items)

    async def _validate_user(self, user_id: str) -> None:
        try:
            await self._users.ValidateUser(
                users_pb2.ValidateUserRequest(user_id=user_id), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise UserRejected("user_not_found", f"no user {user_id}") from exc
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                raise UserRejected("user_dormant", exc.details() or "account is dormant") from exc
            if exc.code() in _UNAVAILABLE:
                raise DependencyUnavailable("the user service did not answer") from exc
            raise

    async def _reserve(self, order_id: str, items: list[tuple[str, int]]) -> None:
        request = inventory_pb2.ReserveStockRequest(
            order_id=order_id,
            items=[inventory_pb2.StockLine(sku=sku, quantity=q) for sku, q in items],
        )
        try:
            await self._inventory.ReserveStock(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            short = dict(exc.trailing_metadata() or ()).get(OUT_OF_STOCK_METADATA)
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION and short:
                raise OutOfStock(str(short).split(",")) from exc
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                raise AttemptRolledBack(order_id) from exc
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidItems(exc.details() or "invalid items") from exc
            if exc.code() in _UNAVAILABLE:
                # The reservation may have been made after all: never leave it behind.
                await self._release(order_id)
                raise DependencyUnavailable("the product service did not answer") from exc
            raise

    async def _release(self, order_id: str) -> None:
        try:
            await self._inventory.ReleaseReservation(
                inventory_pb2.ReservationRef(order_id=order_id), timeout=self._timeout
            )
        except grpc.aio.AioRpcError:
            log.critical("could not release the reservation of %s; its expiry will", order_id)
