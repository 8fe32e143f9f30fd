"""Prices for an order's lines, asked of the product service's catalog over gRPC.

The catalog answers from its price projection (one primary-key read in its MariaDB, whatever
the catalog's size): the price of the version it has committed when it answers. The order is
priced once, here, and keeps these prices on its lines; a price changed during the checkout
prices the orders placed after the change, never this one. A SKU without a price in the
order's currency is absent from the answer, so the placement refuses it as unknown instead of
charging a wrong amount.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import grpc

from commerce_services.order.ports import DependencyUnavailable, InvalidItems
from commerce_services.rpc.commerce.v1 import catalog_pb2, catalog_pb2_grpc


class CatalogPrices:
    def __init__(
        self, catalog: catalog_pb2_grpc.CatalogServiceAsyncStub, currency: str, timeout_s: float
    ) -> None:
        self._catalog = catalog
        self._currency = currency
        self._timeout = timeout_s

    async def __call__(self, skus: list[str]) -> dict[str, Decimal]:
        try:
            answer = await self._catalog.GetPrices(
                catalog_pb2.GetPricesRequest(skus=skus), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise InvalidItems(exc.details() or "invalid SKUs") from exc
            if exc.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise DependencyUnavailable("the product catalog did not answer") from exc
            raise
        prices: dict[str, Decimal] = {}
        for price in answer.prices:
            if price.currency != self._currency:
                continue
            try:
                prices[price.sku] = Decimal(price.amount)
            except InvalidOperation:
                continue  # never price an order from a malformed amount
        return prices
