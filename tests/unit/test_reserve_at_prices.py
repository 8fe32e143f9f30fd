"""Reserving at the catalog's prices (product/inventory/checkout.py) against in-memory ports:
a SKU without a price in the order's currency reserves nothing, and the answer carries the
price of every SKU of the request."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta

import pytest

from commerce_services.product.catalog.model import Price
from commerce_services.product.inventory.checkout import Unpriced, reserve_at_prices
from commerce_services.product.inventory.model import (
    InvalidRequest,
    LineItem,
    Reservation,
    ReservationStatus,
)

TTL = timedelta(minutes=15)
CATALOG = {"A": Price(500, "EUR"), "B": Price(150, "EUR"), "Y": Price(900, "JPY")}


class FakeInventory:
    def __init__(self) -> None:
        self.reserved: list[tuple[str, list[tuple[str, int]]]] = []

    async def reserve(
        self, order_id: str, requested: list[tuple[str, int]], ttl: timedelta
    ) -> Reservation:
        self.reserved.append((order_id, requested))
        items = tuple(LineItem(sku, quantity) for sku, quantity in requested)
        return Reservation(order_id, ReservationStatus.RESERVED, items)


async def catalog_prices(skus: Iterable[str]) -> dict[str, Price]:
    return {sku: CATALOG[sku] for sku in skus if sku in CATALOG}


@pytest.mark.parametrize(
    ("requested", "currency", "prices"),
    [
        ([("A", 1)], "EUR", {"A": "5.00"}),
        ([("B", 2), ("A", 1), ("B", 1)], "EUR", {"B": "1.50", "A": "5.00"}),
        ([("Y", 3)], "JPY", {"Y": "900"}),
    ],
)
async def test_a_priced_request_is_reserved_and_answered_with_its_prices(
    requested: list[tuple[str, int]], currency: str, prices: dict[str, str]
) -> None:
    inventory = FakeInventory()
    priced = await reserve_at_prices(catalog_prices, inventory, "o1", requested, currency, TTL)
    assert {sku: price.amount for sku, price in priced.prices.items()} == prices
    assert inventory.reserved == [("o1", requested)]


@pytest.mark.parametrize(
    ("requested", "currency", "unpriced"),
    [
        ([("A", 1), ("Z", 1)], "EUR", ["Z"]),  # no product sells Z
        ([("Y", 1), ("A", 1)], "EUR", ["Y"]),  # Y is sold in another currency
        ([("Z", 1), ("Y", 1), ("Z", 2)], "USD", ["Y", "Z"]),
    ],
)
async def test_an_unpriced_sku_reserves_nothing_and_is_named(
    requested: list[tuple[str, int]], currency: str, unpriced: list[str]
) -> None:
    inventory = FakeInventory()
    with pytest.raises(Unpriced) as refused:
        await reserve_at_prices(catalog_prices, inventory, "o1", requested, currency, TTL)
    assert refused.value.skus == unpriced
    assert inventory.reserved == []


@pytest.mark.parametrize("currency", ["", "eur", "EURO", "E1R"])
async def test_a_malformed_currency_is_an_invalid_request(currency: str) -> None:
    inventory = FakeInventory()
    with pytest.raises(InvalidRequest):
        await reserve_at_prices(catalog_prices, inventory, "o1", [("A", 1)], currency, TTL)
    assert inventory.reserved == []
