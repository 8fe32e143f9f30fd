"""The price projection: what every SKU of a live product costs at the product's committed
version, one row per SKU in MariaDB, next to the inventory. The catalog commit rewrites a
product's rows in its transaction (with the listing rows and the change event), so a price
lookup is one primary-key read and agrees with what listings and search show.

The rule for a price change during checkout: an order is priced once, at its reservation, at
the version committed when ReserveStock answers (product/inventory/checkout.py); the order
keeps those prices (its lines store them). A change committed later prices later orders only;
a write not yet committed is no price yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import bindparam, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from commerce_services.product.catalog.model import Price
from commerce_services.product.catalog.tables import sku_prices


async def replace_in(
    conn: AsyncConnection, product_id: str, version: int, prices: Sequence[tuple[str, Price]]
) -> None:
    """Inside the caller's transaction: the product's rows become exactly `prices` (none when
    deleted)."""
    await conn.execute(sku_prices.delete().where(sku_prices.c.product_id == product_id))
    if prices:
        await conn.execute(
            insert(sku_prices),
            [
                {
                    "sku": sku,
                    "product_id": product_id,
                    "version": version,
                    "amount_minor": price.minor,
                    "currency": price.currency,
                }
                for sku, price in prices
            ],
        )


# Built once, the SKUs passed apart (an expanding IN): SQLAlchemy builds nothing per call.
_PRICES = select(sku_prices.c.sku, sku_prices.c.amount_minor, sku_prices.c.currency).where(
    sku_prices.c.sku.in_(bindparam("skus", expanding=True))
)


class SkuPrices:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def prices(self, skus: Iterable[str]) -> dict[str, Price]:
        """The committed price of each SKU that a live product has; others are absent."""
        wanted = sorted(set(skus))
        if not wanted:
            return {}
        async with self._engine.connect() as conn:
            rows = await conn.execute(_PRICES, {"skus": wanted})
            return {str(r.sku): Price(int(r.amount_minor), str(r.currency)) for r in rows}
