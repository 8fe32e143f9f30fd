"""gRPC adapter of the inventory (commerce.v1.InventoryService): messages in, store calls, errors
mapped to status codes. No rules live here."""

from __future__ import annotations

from collections.abc import Awaitable
from datetime import timedelta
from typing import NoReturn

import grpc
from prometheus_client import Counter

from commerce_services.product.inventory.checkout import (
    CatalogPrices,
    PricedReservation,
    Unpriced,
    reserve_at_prices,
)
from commerce_services.product.inventory.model import (
    InvalidRequest,
    OutOfStock,
    Reservation,
    ReservationConflict,
    ReservationNotFound,
)
from commerce_services.product.inventory.store import InventoryStore
from commerce_services.rpc.commerce.v1 import inventory_pb2, inventory_pb2_grpc
from commerce_services.rpc.trailers import OUT_OF_STOCK_SKUS, UNPRICED_SKUS


def _message(reservation: Reservation) -> inventory_pb2.Reservation:
    return inventory_pb2.Reservation(
        order_id=reservation.order_id,
        status=inventory_pb2.ReservationStatus.Value(
            f"RESERVATION_STATUS_{reservation.status.value}"
        ),
        items=[inventory_pb2.StockLine(sku=i.sku, quantity=i.quantity) for i in reservation.items],
    )


def _priced_message(priced: PricedReservation) -> inventory_pb2.Reservation:
    message = _message(priced.reservation)
    message.prices.extend(
        inventory_pb2.UnitPrice(sku=sku, amount=price.amount)
        for sku, price in priced.prices.items()
    )
    return message


RESERVATION_CONFLICTS = Counter(
    "commerce_reservation_conflicts_total", "Reservations refused for insufficient stock"
)


async def _abort(context: grpc.aio.ServicerContext[object, object], exc: Exception) -> NoReturn:
    if isinstance(exc, InvalidRequest):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
    if isinstance(exc, OutOfStock):
        RESERVATION_CONFLICTS.inc()
        context.set_trailing_metadata(((OUT_OF_STOCK_SKUS, ",".join(exc.skus)),))
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
    if isinstance(exc, Unpriced):
        context.set_trailing_metadata(((UNPRICED_SKUS, ",".join(exc.skus)),))
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
    if isinstance(exc, ReservationConflict):
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
    if isinstance(exc, ReservationNotFound):
        await context.abort(grpc.StatusCode.NOT_FOUND, f"no reservation for order {exc}")
    raise exc


REFUSALS = (InvalidRequest, OutOfStock, Unpriced, ReservationConflict, ReservationNotFound)


class InventoryServicer(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(
        self, store: InventoryStore, prices: CatalogPrices, reservation_ttl: timedelta
    ) -> None:
        self._store = store
        self._prices = prices
        self._ttl = reservation_ttl

    async def _answer(
        self, call: Awaitable[Reservation], context: grpc.aio.ServicerContext[object, object]
    ) -> inventory_pb2.Reservation:
        try:
            return _message(await call)
        except REFUSALS as exc:
            await _abort(context, exc)

    # Method names are the RPC names, as the generated base class defines them.
    async def ReserveStock(
        self,
        request: inventory_pb2.ReserveStockRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> inventory_pb2.Reservation:
        lines = [(line.sku, line.quantity) for line in request.items]
        try:
            priced = await reserve_at_prices(
                self._prices, self._store, request.order_id, lines, request.currency, self._ttl
            )
        except REFUSALS as exc:
            await _abort(context, exc)
        return _priced_message(priced)

    async def ConfirmReservation(
        self,
        request: inventory_pb2.ReservationRef,
        context: grpc.aio.ServicerContext[object, object],
    ) -> inventory_pb2.Reservation:
        store = self._store
        return await self._answer(
            store.units.run(lambda unit: store.confirm(unit, request.order_id)), context
        )

    async def ReleaseReservation(
        self,
        request: inventory_pb2.ReservationRef,
        context: grpc.aio.ServicerContext[object, object],
    ) -> inventory_pb2.Reservation:
        store = self._store
        return await self._answer(
            store.units.run(lambda unit: store.release(unit, request.order_id)), context
        )
