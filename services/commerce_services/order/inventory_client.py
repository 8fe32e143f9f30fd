"""The Reservations port over gRPC (commerce.v1.InventoryService), with a deadline per call:
one ReserveStock both reserves the stock and prices it (the product service reads its
catalog's price projection next to the inventory), so checkout costs no separate price call.
Calls wait for the channel to the product service within their deadline (`wait_for_ready`):
a product service that is starting or restarting is not an outage if it is back in time."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import grpc

from commerce_services.order.ports import (
    DependencyUnavailable,
    InvalidItems,
    OutOfStock,
    ReservationRefused,
    UnknownSku,
)
from commerce_services.order.users_client import UNAVAILABLE
from commerce_services.rpc.commerce.v1 import inventory_pb2, inventory_pb2_grpc
from commerce_services.rpc.trailers import OUT_OF_STOCK_SKUS, UNPRICED_SKUS


class GrpcReservations:
    def __init__(
        self, stub: inventory_pb2_grpc.InventoryServiceAsyncStub, timeout_s: float
    ) -> None:
        self._stub = stub
        self._timeout = timeout_s

    async def reserve(
        self, order_id: str, items: list[tuple[str, int]], currency: str
    ) -> dict[str, Decimal]:
        request = inventory_pb2.ReserveStockRequest(
            order_id=order_id,
            items=[inventory_pb2.StockLine(sku=sku, quantity=q) for sku, q in items],
            currency=currency,
        )
        try:
            reservation = await self._stub.ReserveStock(
                request, timeout=self._timeout, wait_for_ready=True
            )
        except grpc.aio.AioRpcError as exc:
            trailers = dict(exc.trailing_metadata() or ())
            short, unpriced = trailers.get(OUT_OF_STOCK_SKUS), trailers.get(UNPRICED_SKUS)
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION and short:
                raise OutOfStock(str(short).split(",")) from exc
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION and unpriced:
                raise UnknownSku(str(unpriced).split(",")) from exc
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                raise ReservationRefused(exc.details() or order_id) from exc
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidItems(exc.details() or "invalid items") from exc
            if exc.code() in UNAVAILABLE:
                raise DependencyUnavailable("the product service did not answer") from exc
            raise
        prices: dict[str, Decimal] = {}
        for price in reservation.prices:
            try:
                prices[price.sku] = Decimal(price.amount)
            except InvalidOperation:
                continue  # never price an order from a malformed amount: the SKU stays unpriced
        return prices

    async def release(self, order_id: str) -> None:
        try:
            await self._stub.ReleaseReservation(
                inventory_pb2.ReservationRef(order_id=order_id),
                timeout=self._timeout,
                wait_for_ready=True,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in UNAVAILABLE:
                raise DependencyUnavailable("the product service did not answer") from exc
            raise
