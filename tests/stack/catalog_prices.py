"""The catalog's side of ReserveStock for tests that serve the inventory without a catalog:
what `CatalogStore.prices` answers, as a function of the SKU (test_product_process runs the
real one)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from decimal import Decimal

from commerce_services.product.catalog.model import Price
from commerce_services.product.inventory.checkout import CatalogPrices


def catalog_prices(amount: str, sells: Callable[[str], bool]) -> CatalogPrices:
    """`amount` EUR for every SKU that `sells`; the others have no price."""
    price = Price(int(Decimal(amount) * 100), "EUR")

    async def prices(skus: Iterable[str]) -> dict[str, Price]:
        return {sku: price for sku in skus if sells(sku)}

    return prices
