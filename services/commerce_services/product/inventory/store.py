"""Stock levels and reservations in MariaDB.

Guarantees (each operation is one transaction, retried on deadlock or lock timeout):
- reserve is all-or-nothing: one conditional UPDATE per SKU (stock - reserved >= qty) in SKU
  order; if any SKU is short, nothing is reserved and every short SKU is named.
- reserve, confirm and release are idempotent per order id: a replay returns the recorded
  outcome; a replay with different items, or a transition the state forbids, is a conflict.
- every operation on an order first locks that order's row in reservation_orders, then the
  inventory rows in SKU order, so concurrent operations serialize without deadlocking.
- a release that arrives before its reservation leaves a RELEASED marker, so the late
  reservation is refused instead of leaking stock.
- nothing is released by time: a reservation past its expiry is reported as overdue; the
  order service decides (order_cancelled, or the release of an abandoned placement).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from commerce_services.db.transactions import DUPLICATE_KEY, mysql_code, retry_transaction
from commerce_services.product.inventory.model import (
    LineItem,
    OutOfStock,
    Reservation,
    ReservationConflict,
    ReservationNotFound,
    ReservationStatus,
    fingerprint,
    normalize,
    validate_stock,
)
from commerce_services.product.inventory.tables import (
    inventory,
    reservation_items,
    reservation_orders,
)
from commerce_services.runtime.clock import utc_now


@dataclass(frozen=True)
class StockLevel:
    sku: str
    stock: int
    reserved: int

    @property
    def available(self) -> int:
        return self.stock - self.reserved


class StockBelowReserved(Exception):
    def __init__(self, sku: str, reserved: int) -> None:
        super().__init__(f"stock of {sku} cannot go below the {reserved} units reserved")
        self.sku = sku
        self.reserved = reserved


class InventoryStore:
    def __init__(self, engine: AsyncEngine, clock: Callable[[], datetime] = utc_now) -> None:
        self._engine = engine
        self._clock = clock

    # ---- stock ----------------------------------------------------------------------------

    @retry_transaction
    async def set_stock(self, sku: str, stock: int) -> StockLevel:
        """Sets the on-hand quantity; refused below what is currently reserved."""
        validate_stock(sku, stock)
        now = self._clock()
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    select(inventory.c.reserved).where(inventory.c.sku == sku).with_for_update()
                )
            ).one_or_none()
            if row is None:
                await conn.execute(
                    insert(inventory).values(sku=sku, stock=stock, reserved=0, updated_at=now)
                )
                return StockLevel(sku, stock, 0)
            if stock < row.reserved:
                raise StockBelowReserved(sku, row.reserved)
            await conn.execute(
                update(inventory).where(inventory.c.sku == sku).values(stock=stock, updated_at=now)
            )
            return StockLevel(sku, stock, row.reserved)

    async def stock_level(self, sku: str) -> StockLevel | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    select(inventory.c.sku, inventory.c.stock, inventory.c.reserved).where(
                        inventory.c.sku == sku
                    )
                )
            ).one_or_none()
        return None if row is None else StockLevel(row.sku, row.stock, row.reserved)

    # ---- reservations ---------------------------------------------------------------------

    @retry_transaction
    async def reserve(
        self, order_id: str, requested: list[tuple[str, int]], ttl: timedelta
    ) -> Reservation:
        items = normalize(order_id, requested)
        digest = fingerprint(items)
        now = self._clock()
        async with self._engine.connect() as conn:
            # Lock-free reads first: a replay is answered from the ledger, and a request that
            # cannot be met right now fails without writing (most flash-sale requests). The
            # conditional UPDATEs below still decide; these reads only avoid needless writes.
            if await self._header(conn, order_id, lock=False) is not None:
                return await self._replay(order_id, digest)
            short = await self._short_skus(conn, items)
        if short:
            raise OutOfStock(short)
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    insert(reservation_orders).values(
                        order_id=order_id,
                        status=ReservationStatus.RESERVED,
                        request_hash=digest,
                        expires_at=now + ttl,
                        created_at=now,
                        updated_at=now,
                    )
                )
                await conn.execute(
                    insert(reservation_items),
                    [{"order_id": order_id, "sku": i.sku, "quantity": i.quantity} for i in items],
                )
                # The contended rows last, so their locks are held only until the commit.
                for item in items:  # SKU order: the lock order
                    taken = await conn.execute(
                        update(inventory)
                        .where(
                            inventory.c.sku == item.sku,
                            inventory.c.stock - inventory.c.reserved >= item.quantity,
                        )
                        .values(reserved=inventory.c.reserved + item.quantity, updated_at=now)
                    )
                    if taken.rowcount != 1:
                        short.append(item.sku)
                if short:
                    raise OutOfStock(short)  # leaving the block rolls everything above back
        except IntegrityError as exc:
            if mysql_code(exc) != DUPLICATE_KEY:
                raise
            return await self._replay(order_id, digest)
        return Reservation(order_id, ReservationStatus.RESERVED, items)

    async def _replay(self, order_id: str, digest: str) -> Reservation:
        async with self._engine.connect() as conn:
            header = await self._header(conn, order_id, lock=False)
            if header is None:  # the first attempt rolled back after all: let the caller retry
                raise ReservationConflict(f"reservation {order_id} is being retried concurrently")
            items = await self._items(conn, order_id)
        if header.status == ReservationStatus.RELEASED:
            raise ReservationConflict(f"reservation {order_id} was already released")
        if header.request_hash != digest:
            raise ReservationConflict(f"reservation {order_id} exists with different items")
        return Reservation(order_id, ReservationStatus(header.status), items)

    @retry_transaction
    async def confirm(self, order_id: str) -> Reservation:
        """Turns the reservation into a sale: stock and reserved both drop by the quantities."""
        async with self._engine.begin() as conn:
            return await self.confirm_in(conn, order_id)

    async def confirm_in(self, conn: AsyncConnection, order_id: str) -> Reservation:
        """confirm() inside the caller's transaction (an event consumer records the event in
        the same one); the caller retries deadlocks."""
        now = self._clock()
        header = await self._header(conn, order_id, lock=True)
        if header is None:
            raise ReservationNotFound(order_id)
        items = await self._items(conn, order_id)
        status = ReservationStatus(header.status)
        if status == ReservationStatus.CONFIRMED:
            return Reservation(order_id, status, items)
        if status == ReservationStatus.RELEASED:
            raise ReservationConflict(f"reservation {order_id} was released; cannot confirm")
        for item in items:
            await conn.execute(
                update(inventory)
                .where(inventory.c.sku == item.sku)
                .values(
                    stock=inventory.c.stock - item.quantity,
                    reserved=inventory.c.reserved - item.quantity,
                    updated_at=now,
                )
            )
        await self._set_status(conn, order_id, ReservationStatus.CONFIRMED, now)
        return Reservation(order_id, ReservationStatus.CONFIRMED, items)

    @retry_transaction
    async def release(self, order_id: str) -> Reservation:
        """Gives the reserved units back; for an unknown order, records that it was released."""
        async with self._engine.begin() as conn:
            return await self.release_in(conn, order_id)

    async def release_in(self, conn: AsyncConnection, order_id: str) -> Reservation:
        """release() inside the caller's transaction; the caller retries deadlocks."""
        now = self._clock()
        header = await self._header(conn, order_id, lock=True)
        if header is None:
            await conn.execute(
                insert(reservation_orders).values(
                    order_id=order_id,
                    status=ReservationStatus.RELEASED,
                    request_hash=None,
                    expires_at=None,
                    created_at=now,
                    updated_at=now,
                )
            )
            return Reservation(order_id, ReservationStatus.RELEASED, ())
        items = await self._items(conn, order_id)
        status = ReservationStatus(header.status)
        if status == ReservationStatus.RELEASED:
            return Reservation(order_id, status, items)
        if status == ReservationStatus.CONFIRMED:
            raise ReservationConflict(f"reservation {order_id} was confirmed; cannot release")
        for item in items:
            await conn.execute(
                update(inventory)
                .where(inventory.c.sku == item.sku)
                .values(reserved=inventory.c.reserved - item.quantity, updated_at=now)
            )
        await self._set_status(conn, order_id, ReservationStatus.RELEASED, now)
        return Reservation(order_id, ReservationStatus.RELEASED, items)

    async def overdue(self, limit: int = 100) -> list[str]:
        """Order ids whose reservation is still held past its expiry, oldest first.

        Reported, never released here: only the order service knows whether the order was
        written and paid, and it releases what it abandons or cancels. A release decided here
        could put a sold unit back on sale (a paid order whose confirm is still on its way)."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(reservation_orders.c.order_id)
                .where(
                    reservation_orders.c.status == ReservationStatus.RESERVED,
                    reservation_orders.c.expires_at <= self._clock(),
                )
                .order_by(reservation_orders.c.expires_at)
                .limit(limit)
            )
            return [row.order_id for row in rows]

    # ---- helpers --------------------------------------------------------------------------

    @staticmethod
    async def _header(conn: AsyncConnection, order_id: str, *, lock: bool) -> Row[Any, Any] | None:
        query = select(reservation_orders.c.status, reservation_orders.c.request_hash).where(
            reservation_orders.c.order_id == order_id
        )
        if lock:
            query = query.with_for_update()
        return (await conn.execute(query)).one_or_none()

    @staticmethod
    async def _short_skus(conn: AsyncConnection, items: tuple[LineItem, ...]) -> list[str]:
        rows = await conn.execute(
            select(inventory.c.sku, inventory.c.stock - inventory.c.reserved).where(
                inventory.c.sku.in_([i.sku for i in items])
            )
        )
        available = {sku: free for sku, free in rows}
        return [i.sku for i in items if available.get(i.sku, 0) < i.quantity]

    @staticmethod
    async def _items(conn: AsyncConnection, order_id: str) -> tuple[LineItem, ...]:
        rows = await conn.execute(
            select(reservation_items.c.sku, reservation_items.c.quantity)
            .where(reservation_items.c.order_id == order_id)
            .order_by(reservation_items.c.sku)
        )
        return tuple(LineItem(row.sku, row.quantity) for row in rows)

    @staticmethod
    async def _set_status(
        conn: AsyncConnection, order_id: str, status: ReservationStatus, now: datetime
    ) -> None:
        await conn.execute(
            update(reservation_orders)
            .where(reservation_orders.c.order_id == order_id)
            .values(status=status, updated_at=now)
        )
