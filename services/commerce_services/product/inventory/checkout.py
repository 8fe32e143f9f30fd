"""Reserving an order's stock at the catalog's prices: the order service's one call at checkout.

A SKU is reserved only if a live product sells it in the order's currency; otherwise nothing
is reserved and every such SKU is named (Unpriced). The prices are read just before the
reservation, so the answer carries the unit prices the order keeps: the prices of the versions
committed when ReserveStock answers (a replay of an order id reads them again). A price changed
during checkout prices the orders reserved after the change, never this one.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

from commerce_services.product.catalog.model import Price
from commerce_services.product.inventory.model import InvalidRequest, Reservation

CURRENCY = re.compile(r"^[A-Z]{3}$")

# The catalog's committed price of each SKU a live product sells (CatalogStore.prices).
CatalogPrices = Callable[[Iterable[str]], Awaitable[dict[str, Price]]]


class Reserving(Protocol):
    """The inventory's side (InventoryStore in production)."""

    async def reserve(
        self, order_id: str, requested: list[tuple[str, int]], ttl: timedelta
    ) -> Reservation: ...


class Unpriced(Exception):
    """SKUs no live product sells in the order's currency; nothing was reserved."""

    def __init__(self, skus: list[str]) -> None:
        super().__init__(f"no price for {', '.join(skus)}")
        self.skus = skus


@dataclass(frozen=True)
class PricedReservation:
    reservation: Reservation
    prices: dict[str, Price]  # the unit price of every SKU of the request


async def reserve_at_prices(
    prices: CatalogPrices,
    inventory: Reserving,
    order_id: str,
    requested: list[tuple[str, int]],
    currency: str,
    ttl: timedelta,
) -> PricedReservation:
    if not CURRENCY.fullmatch(currency):
        raise InvalidRequest("currency must be an ISO 4217 code: three capital letters")
    skus = list(dict.fromkeys(sku for sku, _ in requested))
    found = await prices(skus)
    unpriced = sorted(sku for sku in skus if sku not in found or found[sku].currency != currency)
    if unpriced:
        raise Unpriced(unpriced)
    reservation = await inventory.reserve(order_id, requested, ttl)
    return PricedReservation(reservation, {sku: found[sku] for sku in skus})
