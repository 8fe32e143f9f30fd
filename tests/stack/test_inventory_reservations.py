"""Stock reservations against the product service's real MariaDB database.

These tests try to break the guarantees of InventoryStore: overselling under concurrency,
partial reservations, duplicate requests, conflicting transitions, a release that overtakes its
reservation, deadlocks between orders that share SKUs, and expiry (reported, never a release).
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pymysql
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from commerce_services.product.inventory.model import (
    OutOfStock,
    ReservationConflict,
    ReservationStatus,
)
from commerce_services.product.inventory.store import InventoryStore, StockBelowReserved
from tests.stack.conftest import TTL, Clock, confirm, release


async def test_two_hundred_buyers_fifty_units_exactly_fifty_reservations(
    store: InventoryStore, sku: str
) -> None:
    await store.set_stock(sku, 50)

    async def buy(n: int) -> list[str]:
        """The SKUs this buyer was told are short (none when the reservation succeeded)."""
        try:
            await store.reserve(f"{sku}-order-{n}", [(sku, 1)], TTL)
        except OutOfStock as exc:
            return exc.skus
        return []

    outcomes = await asyncio.gather(*(buy(n) for n in range(200)))
    assert outcomes.count([]) == 50
    assert outcomes.count([sku]) == 150
    level = await store.stock_level(sku)
    assert level is not None
    assert (level.stock, level.reserved, level.available) == (50, 50, 0)


async def test_a_short_sku_reserves_nothing_and_names_every_short_sku(
    store: InventoryStore, unique: str
) -> None:
    a, b, c = (f"{x}-{unique}" for x in "ABC")
    await store.set_stock(a, 5)
    await store.set_stock(b, 1)
    with pytest.raises(OutOfStock) as short:
        await store.reserve(f"o-{unique}", [(a, 2), (b, 3), (c, 1)], TTL)
    assert short.value.skus == sorted([b, c])  # c does not exist at all
    for s in (a, b):
        level = await store.stock_level(s)
        assert level is not None
        assert level.reserved == 0
    # Nothing was recorded for the order either: the same id can be used once stock allows.
    done = await store.reserve(f"o-{unique}", [(a, 2)], TTL)
    assert done.status == ReservationStatus.RESERVED


async def test_orders_sharing_skus_in_opposite_orders_do_not_deadlock(
    store: InventoryStore, unique: str
) -> None:
    skus = [f"{x}-{unique}" for x in "PQRS"]
    for s in skus:
        await store.set_stock(s, 1000)

    async def order(n: int) -> None:
        lines = [(s, 1) for s in (skus if n % 2 else list(reversed(skus)))]
        await store.reserve(f"x-{unique}-{n}", lines, TTL)

    await asyncio.gather(*(order(n) for n in range(60)))
    for s in skus:
        level = await store.stock_level(s)
        assert level is not None
        assert level.reserved == 60


async def test_replay_is_idempotent_and_different_items_conflict(
    store: InventoryStore, sku: str
) -> None:
    await store.set_stock(sku, 10)
    first = await store.reserve(f"r-{sku}", [(sku, 3)], TTL)
    replays = await asyncio.gather(*(store.reserve(f"r-{sku}", [(sku, 3)], TTL) for _ in range(20)))
    assert all(r == first for r in replays)
    level = await store.stock_level(sku)
    assert level is not None
    assert level.reserved == 3

    with pytest.raises(ReservationConflict, match="different items"):
        await store.reserve(f"r-{sku}", [(sku, 4)], TTL)


async def test_concurrent_first_attempts_of_one_order_reserve_once(
    store: InventoryStore, sku: str
) -> None:
    await store.set_stock(sku, 10)
    results = await asyncio.gather(
        *(store.reserve(f"dup-{sku}", [(sku, 2)], TTL) for _ in range(15)), return_exceptions=True
    )
    assert [r for r in results if isinstance(r, BaseException)] == []
    level = await store.stock_level(sku)
    assert level is not None
    assert level.reserved == 2


async def test_one_order_id_with_other_items_in_the_same_instant_conflicts(
    store: InventoryStore, sku: str
) -> None:
    await store.set_stock(sku, 10)
    results = await asyncio.gather(
        *(store.reserve(f"mix-{sku}", [(sku, 1 + n % 2)], TTL) for n in range(10)),
        return_exceptions=True,
    )
    won = {r.items[0].quantity for r in results if not isinstance(r, BaseException)}
    lost = [r for r in results if isinstance(r, BaseException)]
    assert len(won) == 1  # every success is the one recorded reservation
    assert lost
    assert all(isinstance(e, ReservationConflict) for e in lost)
    level = await store.stock_level(sku)
    assert level is not None
    assert level.reserved == won.pop()


async def test_separate_processes_reserving_one_order_id_reserve_once(
    engine: AsyncEngine, clock: Clock, sku: str
) -> None:
    """Each store stands for a replica's process: their batches race on the ledger's key."""
    stores = [InventoryStore(engine, clock) for _ in range(4)]
    await stores[0].set_stock(sku, 10)
    results = await asyncio.gather(
        *(s.reserve(f"proc-{sku}", [(sku, 3)], TTL) for s in stores for _ in range(3)),
        return_exceptions=True,
    )
    assert [r for r in results if isinstance(r, BaseException)] == []
    level = await stores[0].stock_level(sku)
    assert level is not None
    assert level.reserved == 3


async def test_confirm_sells_once_and_then_cannot_be_released(
    store: InventoryStore, sku: str
) -> None:
    await store.set_stock(sku, 10)
    await store.reserve(f"c-{sku}", [(sku, 4)], TTL)
    confirmed = await asyncio.gather(*(confirm(store, f"c-{sku}") for _ in range(10)))
    assert {c.status for c in confirmed} == {ReservationStatus.CONFIRMED}
    level = await store.stock_level(sku)
    assert level is not None
    assert (level.stock, level.reserved) == (6, 0)
    with pytest.raises(ReservationConflict, match="confirmed"):
        await release(store, f"c-{sku}")


async def test_release_gives_back_once_and_then_cannot_be_confirmed(
    store: InventoryStore, sku: str
) -> None:
    await store.set_stock(sku, 10)
    await store.reserve(f"l-{sku}", [(sku, 4)], TTL)
    await asyncio.gather(*(release(store, f"l-{sku}") for _ in range(10)))
    level = await store.stock_level(sku)
    assert level is not None
    assert (level.stock, level.reserved) == (10, 0)
    with pytest.raises(ReservationConflict, match="released"):
        await confirm(store, f"l-{sku}")


async def test_confirm_racing_release_exactly_one_wins(store: InventoryStore, sku: str) -> None:
    await store.set_stock(sku, 100)
    orders = [f"race-{sku}-{n}" for n in range(20)]
    for order_id in orders:
        await store.reserve(order_id, [(sku, 1)], TTL)

    async def attempt(op: str, order_id: str) -> str | None:
        try:
            await (confirm if op == "confirm" else release)(store, order_id)
        except ReservationConflict:
            return None
        return op

    outcomes = await asyncio.gather(
        *(attempt(op, o) for o in orders for op in ("confirm", "release"))
    )
    winners = [w for w in outcomes if w is not None]
    assert len(winners) == len(orders)  # per order, exactly one of the two took effect
    level = await store.stock_level(sku)
    assert level is not None
    assert level.reserved == 0
    assert level.stock == 100 - winners.count("confirm")


async def test_release_overtaking_its_reservation_blocks_it(
    store: InventoryStore, sku: str
) -> None:
    await store.set_stock(sku, 5)
    released = await release(store, f"late-{sku}")
    assert released.status == ReservationStatus.RELEASED
    with pytest.raises(ReservationConflict, match="already released"):
        await store.reserve(f"late-{sku}", [(sku, 1)], TTL)
    level = await store.stock_level(sku)
    assert level is not None
    assert level.reserved == 0


async def test_reservations_past_their_expiry_are_reported_and_never_released(
    store: InventoryStore, clock: Clock, unique: str
) -> None:
    """Issue 13, defect 2: an expiry released a paid order's reservation while its confirm
    waited for the database, and the unit was sold twice. Only the order service, which knows
    whether the order was written and paid, releases."""
    sku = f"E-{unique}"
    await store.set_stock(sku, 10)
    await store.reserve(f"exp-{unique}-1", [(sku, 2)], TTL)
    await store.reserve(f"exp-{unique}-2", [(sku, 3)], TTL)
    await confirm(store, f"exp-{unique}-2")
    clock.now += TTL - timedelta(seconds=1)
    assert f"exp-{unique}-1" not in await store.overdue(limit=100_000)

    clock.now += timedelta(seconds=2)
    overdue = await store.overdue(limit=100_000)
    assert f"exp-{unique}-1" in overdue
    assert f"exp-{unique}-2" not in overdue  # confirmed: a sale, not a hold
    level = await store.stock_level(sku)
    assert level is not None
    assert (level.stock, level.reserved) == (7, 2)  # still held
    confirmed = await confirm(store, f"exp-{unique}-1")  # the late confirm still sells it
    assert confirmed.status == ReservationStatus.CONFIRMED
    assert f"exp-{unique}-1" not in await store.overdue(limit=100_000)


async def test_stock_cannot_drop_below_reserved(
    store: InventoryStore, engine: AsyncEngine, sku: str
) -> None:
    await store.set_stock(sku, 5)
    await store.reserve(f"s-{sku}", [(sku, 4)], TTL)
    with pytest.raises(StockBelowReserved):
        await store.set_stock(sku, 3)
    assert (await store.set_stock(sku, 4)).available == 0
    # The database refuses it too, whatever code tries.
    with pytest.raises(DBAPIError) as refused:
        async with engine.begin() as conn:
            await conn.execute(
                text("UPDATE inventory SET reserved = stock + 1 WHERE sku = :sku"), {"sku": sku}
            )
    assert isinstance(refused.value.orig, pymysql.err.OperationalError | pymysql.err.IntegrityError)
