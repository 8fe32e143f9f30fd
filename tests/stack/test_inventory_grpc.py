"""commerce.v1.InventoryService over a real gRPC channel, backed by the real MariaDB store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from commerce_services.product.inventory.grpc_service import InventoryServicer
from commerce_services.product.inventory.store import InventoryStore
from commerce_services.rpc.commerce.v1 import inventory_pb2, inventory_pb2_grpc
from commerce_services.rpc.trailers import OUT_OF_STOCK_SKUS, UNPRICED_SKUS
from tests.stack.catalog_prices import catalog_prices
from tests.stack.conftest import TTL

DEADLINE_S = 5.0
pb = inventory_pb2


@pytest.fixture
async def inventory(
    store: InventoryStore,
) -> AsyncIterator[inventory_pb2_grpc.InventoryServiceAsyncStub]:
    server = grpc.aio.server()
    prices = catalog_prices("2.50", lambda sku: not sku.startswith("NO-PRICE"))
    inventory_pb2_grpc.add_InventoryServiceServicer_to_server(
        InventoryServicer(store, prices, TTL), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    yield inventory_pb2_grpc.InventoryServiceStub(channel)
    await channel.close()
    await server.stop(grace=None)


def _reserve(order_id: str, *lines: tuple[str, int]) -> inventory_pb2.ReserveStockRequest:
    return pb.ReserveStockRequest(
        order_id=order_id,
        items=[pb.StockLine(sku=s, quantity=q) for s, q in lines],
        currency="EUR",
    )


async def test_reserve_confirm_and_replay(
    inventory: inventory_pb2_grpc.InventoryServiceAsyncStub, store: InventoryStore, sku: str
) -> None:
    await store.set_stock(sku, 10)
    reserved = await inventory.ReserveStock(_reserve(f"g-{sku}", (sku, 3)), timeout=DEADLINE_S)
    assert reserved.status == pb.RESERVATION_STATUS_RESERVED
    assert [(i.sku, i.quantity) for i in reserved.items] == [(sku, 3)]
    again = await inventory.ReserveStock(_reserve(f"g-{sku}", (sku, 3)), timeout=DEADLINE_S)
    assert again == reserved

    ref = pb.ReservationRef(order_id=f"g-{sku}")
    confirmed = await inventory.ConfirmReservation(ref, timeout=DEADLINE_S)
    assert confirmed.status == pb.RESERVATION_STATUS_CONFIRMED
    level = await store.stock_level(sku)
    assert level is not None
    assert (level.stock, level.reserved) == (7, 0)


async def test_out_of_stock_is_failed_precondition_naming_the_skus(
    inventory: inventory_pb2_grpc.InventoryServiceAsyncStub, store: InventoryStore, unique: str
) -> None:
    a, b = f"A-{unique}", f"B-{unique}"
    await store.set_stock(a, 1)
    call = inventory.ReserveStock(_reserve(f"oos-{unique}", (a, 1), (b, 1)), timeout=DEADLINE_S)
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await call
    assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    trailing = dict(failed.value.trailing_metadata() or ())
    assert trailing[OUT_OF_STOCK_SKUS] == b
    level = await store.stock_level(a)
    assert level is not None
    assert level.reserved == 0


@pytest.mark.parametrize(
    ("request_", "code"),
    [
        (_reserve("bad-qty", ("SKU-X", 0)), grpc.StatusCode.INVALID_ARGUMENT),
        (_reserve("bad-sku", ("no spaces allowed", 1)), grpc.StatusCode.INVALID_ARGUMENT),
        (_reserve("", ("SKU-X", 1)), grpc.StatusCode.INVALID_ARGUMENT),
        (_reserve("no-items"), grpc.StatusCode.INVALID_ARGUMENT),
    ],
)
async def test_bad_requests_are_invalid_argument(
    inventory: inventory_pb2_grpc.InventoryServiceAsyncStub,
    request_: inventory_pb2.ReserveStockRequest,
    code: grpc.StatusCode,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as failed:
        await inventory.ReserveStock(request_, timeout=DEADLINE_S)
    assert failed.value.code() == code
    assert "Traceback" not in (failed.value.details() or "")


async def test_unknown_confirm_is_not_found_and_confirm_after_release_is_refused(
    inventory: inventory_pb2_grpc.InventoryServiceAsyncStub, store: InventoryStore, sku: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await inventory.ConfirmReservation(
            pb.ReservationRef(order_id=f"nope-{sku}"), timeout=DEADLINE_S
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND

    await store.set_stock(sku, 2)
    await inventory.ReserveStock(_reserve(f"rel-{sku}", (sku, 2)), timeout=DEADLINE_S)
    released = await inventory.ReleaseReservation(
        pb.ReservationRef(order_id=f"rel-{sku}"), timeout=DEADLINE_S
    )
    assert released.status == pb.RESERVATION_STATUS_RELEASED
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await inventory.ConfirmReservation(
            pb.ReservationRef(order_id=f"rel-{sku}"), timeout=DEADLINE_S
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


async def test_reserve_answers_prices_and_refuses_unpriced_skus_reserving_nothing(
    inventory: inventory_pb2_grpc.InventoryServiceAsyncStub, store: InventoryStore, unique: str
) -> None:
    priced, unpriced = f"P-{unique}", f"NO-PRICE-{unique}"
    for sku in (priced, unpriced):
        await store.set_stock(sku, 5)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await inventory.ReserveStock(
            _reserve(f"np-{unique}", (priced, 1), (unpriced, 1)), timeout=DEADLINE_S
        )
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert dict(refused.value.trailing_metadata() or ())[UNPRICED_SKUS] == unpriced
    for sku in (priced, unpriced):
        level = await store.stock_level(sku)
        assert level is not None
        assert level.reserved == 0

    reserved = await inventory.ReserveStock(
        _reserve(f"p-{unique}", (priced, 2)), timeout=DEADLINE_S
    )
    assert [(p.sku, p.amount) for p in reserved.prices] == [(priced, "2.50")]
    wrong_currency = _reserve(f"p-{unique}", (priced, 2))
    wrong_currency.currency = "JPY"
    with pytest.raises(grpc.aio.AioRpcError) as other:
        await inventory.ReserveStock(wrong_currency, timeout=DEADLINE_S)
    assert dict(other.value.trailing_metadata() or ())[UNPRICED_SKUS] == priced
