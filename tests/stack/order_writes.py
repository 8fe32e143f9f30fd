"""Writing an order straight through the order store, as the placement does once the stock is
reserved: claim the key, then place. For tests of what comes after placing."""

from __future__ import annotations

from datetime import timedelta

from commerce_services.order.model import OrderLine, request_hash
from commerce_services.order.store import Claim, Order, OrderStore

LEASE = timedelta(seconds=30)


async def write_order(
    store: OrderStore, user_id: str, key: str, lines: tuple[OrderLine, ...], token: str
) -> Order:
    items = [(line.sku, line.quantity) for line in lines]
    claimed = await store.claim(user_id, key, request_hash(user_id, items, token), LEASE)
    assert isinstance(claimed, Claim), claimed
    return await store.place(claimed, lines, "EUR", token)
