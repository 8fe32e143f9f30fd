"""commerce.v1.CatalogService over a real gRPC channel, backed by the real catalog store: the
order service prices its lines with GetPrices."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_services.product.catalog.grpc_service import CatalogServicer
from commerce_services.product.catalog.model import Price, ProductContent, Variant
from commerce_services.product.catalog.store import CatalogStore
from commerce_services.product.categories.store import CategoryStore
from commerce_services.rpc.commerce.v1 import catalog_pb2, catalog_pb2_grpc
from commerce_services.runtime.clock import utc_now

DEADLINE_S = 5.0


@pytest.fixture
def tree(engine: AsyncEngine) -> CategoryStore:
    return CategoryStore(engine, utc_now)


@pytest.fixture
async def prices(catalog: CatalogStore) -> AsyncIterator[catalog_pb2_grpc.CatalogServiceAsyncStub]:
    server = grpc.aio.server()
    catalog_pb2_grpc.add_CatalogServiceServicer_to_server(CatalogServicer(catalog), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield catalog_pb2_grpc.CatalogServiceStub(channel)
    await channel.close()
    await server.stop(grace=None)


def _product(category: int, *variants: tuple[str, Price]) -> ProductContent:
    return ProductContent(
        title="Teapot",
        description="",
        brand=None,
        attributes={},
        variants=tuple(Variant(sku, price, {}) for sku, price in variants),
        images=(),
        category_ids=(category,),
        primary_category_id=category,
    )


async def _ask(
    stub: catalog_pb2_grpc.CatalogServiceAsyncStub, *skus: str
) -> list[tuple[str, str, str]]:
    answer = await stub.GetPrices(catalog_pb2.GetPricesRequest(skus=skus), timeout=DEADLINE_S)
    return [(p.sku, p.amount, p.currency) for p in answer.prices]


async def test_prices_in_request_order_unknown_and_deleted_absent(
    prices: catalog_pb2_grpc.CatalogServiceAsyncStub,
    catalog: CatalogStore,
    tree: CategoryStore,
    unique: str,
) -> None:
    category = (await tree.create(f"Tea {unique}", None)).id
    red, blue, jp = f"TP-RED-{unique}", f"TP-BLUE-{unique}", f"TP-JP-{unique}"
    teapot = await catalog.create(
        _product(category, (red, Price(1990, "EUR")), (blue, Price(2005, "EUR")))
    )
    await catalog.create(_product(category, (jp, Price(4500, "JPY"))))
    gone = f"GONE-{unique}"
    deleted = await catalog.create(_product(category, (gone, Price(100, "EUR"))))
    await catalog.delete(deleted.product_id)

    answer = await _ask(prices, jp, f"NOPE-{unique}", red, gone, jp, blue)
    assert answer == [(jp, "4500", "JPY"), (red, "19.90", "EUR"), (blue, "20.05", "EUR")]

    # A replaced product answers with its new price; a dropped SKU is gone.
    await catalog.replace(teapot.product_id, _product(category, (red, Price(1500, "EUR"))))
    assert await _ask(prices, red, blue) == [(red, "15.00", "EUR")]
    assert await _ask(prices) == []


@pytest.mark.parametrize(
    "skus",
    [["has space"], ["OK-1", ""], ["X" * 65], ["TRAILING\n"], [f"S{i}" for i in range(101)]],
)
async def test_malformed_requests_are_invalid_argument(
    prices: catalog_pb2_grpc.CatalogServiceAsyncStub, skus: list[str]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _ask(prices, *skus)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
