"""The Reservations port over gRPC (commerce.v1.InventoryService), with a deadline per call."""

from __future__ import annotations

import grpc

from commerce_services.order.ports import (
    DependencyUnavailable,
    InvalidItems,
    OutOfStock,
    ReservationRefused,
)
from commerce_services.order.users_client import UNAVAILABLE
from commerce_services.rpc.commerce.v1 import inventory_pb2, inventory_pb2_grpc
from commerce_services.rpc.trailers import OUT_OF_STOCK_SKUS


class GrpcReservations:
    def __init__(
        self, stub: inventory_pb2_grpc.InventoryServiceAsyncStub, timeout_s: float
    ) -> None:
        self._stub = stub
        self._timeout = timeout_s

    async def reserve(self, order_id: str, items: list[tuple[str, int]]) -> None:
        request = inventory_pb2.ReserveStockRequest(
            order_id=order_id,
            items=[inventory_pb2.StockLine(sku=sku, quantity=q) for sku, q in items],
        )
        try:
            await self._stub.ReserveStock(request, timeout=self._timeout)
        except grpc.aio.AioRpcError as exc:
            short = dict(exc.trailing_metadata() or ()).get(OUT_OF_STOCK_SKUS)
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION and short:
                raise OutOfStock(str(short).split(",")) from exc
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:
                raise ReservationRefused(exc.details() or order_id) from exc
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidItems(exc.details() or "invalid items") from exc
            if exc.code() in UNAVAILABLE:
                raise DependencyUnavailable("the product service did not answer") from exc
            raise

    async def release(self, order_id: str) -> None:
        try:
            await self._stub.ReleaseReservation(
                inventory_pb2.ReservationRef(order_id=order_id), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in UNAVAILABLE:
                raise DependencyUnavailable("the product service did not answer") from exc
            raise
