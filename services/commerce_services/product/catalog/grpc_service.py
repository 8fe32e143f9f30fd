"""gRPC adapter of the catalog's prices (commerce.v1.CatalogService), for the order service:
SKUs in, prices out, a malformed request mapped to INVALID_ARGUMENT. No rules live here."""

from __future__ import annotations

import grpc

from commerce_services.product.catalog.model import price_query
from commerce_services.product.catalog.store import CatalogStore
from commerce_services.product.inventory.model import InvalidRequest
from commerce_services.rpc.commerce.v1 import catalog_pb2, catalog_pb2_grpc


class CatalogServicer(catalog_pb2_grpc.CatalogServiceServicer):
    def __init__(self, store: CatalogStore) -> None:
        self._store = store

    # Method names are the RPC names, as the generated base class defines them.
    async def GetPrices(
        self,
        request: catalog_pb2.GetPricesRequest,
        context: grpc.aio.ServicerContext[object, object],
    ) -> catalog_pb2.GetPricesResponse:
        try:
            skus = price_query(request.skus)
        except InvalidRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        prices = await self._store.prices(skus)
        return catalog_pb2.GetPricesResponse(
            prices=[
                catalog_pb2.SkuPrice(
                    sku=sku, amount=prices[sku].amount, currency=prices[sku].currency
                )
                for sku in skus
                if sku in prices
            ]
        )
