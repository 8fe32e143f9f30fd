"""Stock levels and reservations in MariaDB.

Guarantees (each operation is one transaction, retried on deadlock or lock timeout):
- reserve is all-or-nothing: if any SKU is short, nothing is reserved and every short SKU is
  named. Concurrent reservations of one process are coalesced (db/group_commit.py): one
  transaction locks the batch's SKU rows once, in SKU order, allocates in arrival order
  (model.allocate), writes one UPDATE per SKU and the granted requests' ledger rows, and
  commits once; each request still gets its own answer. Under a flash sale that is many
  buyers per row lock and per commit instead of one.
- reserve, confirm and release are idempotent per order id: a replay returns the recorded
  outcome; a replay with different items, or a transition the state forbids, is a conflict.
- confirm and release lock the order's row in reservation_orders, then the inventory rows in
  SKU order; several at once (`apply_all`, the order events a fetch brought) lock their orders'
  rows in order id order, then their SKUs' rows in SKU order; a reservation batch locks only
  inventory rows (in SKU order) and inserts new ledger rows, so concurrent operations
  serialize without deadlocking. What confirm and release do in each state is
  model.transition (model.plan for several).
- a release that arrives before its reservation leaves a RELEASED marker, so the late
  reservation is refused instead of leaking stock.
- nothing is released by time: a reservation past its expiry is reported as overdue; the
  order service decides (order_cancelled, or the release of an abandoned placement).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from commerce_services.db.group_commit import GroupCommit
from commerce_services.db.locking_reads import locked_by_key
from commerce_services.db.transactions import DUPLICATE_KEY, mysql_code, retry_transaction
from commerce_services.db.unit_of_work import UnitOfWork, UnitsOfWork
from commerce_services.product.inventory.model import (
    LineItem,
    Operation,
    OutOfStock,
    Reservation,
    ReservationConflict,
    ReservationStatus,
    ReserveRequest,
    StockEffect,
    allocate,
    fingerprint,
    normalize,
    plan,
    replay,
    transition,
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


@dataclass(frozen=True)
class _Recorded:
    """A reservation as the ledger holds it."""

    status: ReservationStatus
    digest: str | None
    items: tuple[LineItem, ...]


# The statements of the hot paths, built once, their values passed apart (expanding INs):
# SQLAlchemy builds nothing per batch. Bind names differ from the columns', as an UPDATE
# requires.
_LOCK_STOCK = locked_by_key(
    inventory.c.sku, inventory.c.sku, inventory.c.stock - inventory.c.reserved
)
_MOVE_STOCK = (
    update(inventory)
    .where(inventory.c.sku == bindparam("moved_sku"))
    .values(
        reserved=inventory.c.reserved + bindparam("reserved_by"),
        stock=inventory.c.stock + bindparam("stock_by"),
        updated_at=bindparam("now"),
    )
)
_LOCK_LEDGER = locked_by_key(
    reservation_orders.c.order_id, reservation_orders.c.order_id, reservation_orders.c.status
)
_SET_STATUS = (
    update(reservation_orders)
    .where(reservation_orders.c.order_id.in_(bindparam("changed_ids", expanding=True)))
    .values(status=bindparam("new_status"), updated_at=bindparam("now"))
)
# The ledger read of a replay (no locks).
_LEDGER_HEADERS = select(
    reservation_orders.c.order_id, reservation_orders.c.status, reservation_orders.c.request_hash
).where(reservation_orders.c.order_id.in_(bindparam("order_ids", expanding=True)))
_LEDGER_ITEMS = (
    select(reservation_items)
    .where(reservation_items.c.order_id.in_(bindparam("order_ids", expanding=True)))
    .order_by(reservation_items.c.order_id, reservation_items.c.sku)
)


class InventoryStore:
    def __init__(
        self,
        engine: AsyncEngine,
        clock: Callable[[], datetime] = utc_now,
        batch_max: int = 256,
        batch_parallel: int = 2,
    ) -> None:
        self._engine = engine
        self.units = UnitsOfWork(engine)  # for callers that start the work (gRPC, tests)
        self._clock = clock
        self._reservations: GroupCommit[tuple[ReserveRequest, timedelta], Reservation] = (
            GroupCommit(self._reserve_batch, batch_max, batch_parallel)
        )

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

    async def reserve(
        self, order_id: str, requested: list[tuple[str, int]], ttl: timedelta
    ) -> Reservation:
        items = normalize(order_id, requested)
        return await self._reservations.submit(
            (ReserveRequest(order_id, items, fingerprint(items)), ttl)
        )

    async def _reserve_batch(
        self, batch: Sequence[tuple[ReserveRequest, timedelta]]
    ) -> list[Reservation | BaseException]:
        """One transaction for a batch of reservations (group commit): the SKUs' rows locked
        once, in SKU order, the stock allocated in arrival order, one UPDATE per SKU, the
        granted requests' ledger rows in two multi-row INSERTs, one commit. Replays of order
        ids already in the ledger are answered from it."""
        for attempt in range(3):
            try:
                return await self._reserve_batch_once(batch)
            except IntegrityError as exc:
                # Another process inserted one of these order ids meanwhile: the retry reads it
                # as existing and answers it as a replay.
                if mysql_code(exc) != DUPLICATE_KEY or attempt == 2:
                    raise
        raise AssertionError("unreachable")

    @retry_transaction
    async def _reserve_batch_once(
        self, batch: Sequence[tuple[ReserveRequest, timedelta]]
    ) -> list[Reservation | BaseException]:
        now = self._clock()
        first: dict[str, ReserveRequest] = {}
        for request, _ttl in batch:
            first.setdefault(request.order_id, request)
        ttls = {request.order_id: ttl for request, ttl in reversed(batch)}
        async with self._engine.begin() as conn:
            recorded = await self._recorded(conn, list(first))
            fresh = [r for r in first.values() if r.order_id not in recorded]
            skus = sorted({item.sku for request in fresh for item in request.items})
            available: dict[str, int] = {}
            if skus:
                rows = await conn.execute(_LOCK_STOCK, {"keys": skus})
                available = {sku: free for sku, free in rows}
            granted, refused = allocate(fresh, available)
            if granted:
                await conn.execute(
                    insert(reservation_orders),
                    [
                        {
                            "order_id": r.order_id,
                            "status": ReservationStatus.RESERVED,
                            "request_hash": r.digest,
                            "expires_at": now + ttls[r.order_id],
                            "created_at": now,
                            "updated_at": now,
                        }
                        for r in granted
                    ],
                )
                await conn.execute(
                    insert(reservation_items),
                    [
                        {"order_id": r.order_id, "sku": i.sku, "quantity": i.quantity}
                        for r in granted
                        for i in r.items
                    ],
                )
                taken: dict[str, int] = {}
                for request in granted:
                    for item in request.items:
                        taken[item.sku] = taken.get(item.sku, 0) + item.quantity
                await conn.execute(
                    _MOVE_STOCK,
                    [  # sorted by SKU: the lock order
                        {"moved_sku": sku, "reserved_by": taken[sku], "stock_by": 0, "now": now}
                        for sku in sorted(taken)
                    ],
                )
        decided: dict[str, Reservation | BaseException] = {
            r.order_id: Reservation(r.order_id, ReservationStatus.RESERVED, r.items)
            for r in granted
        }
        decided.update({order_id: OutOfStock(short) for order_id, short in refused.items()})
        answers: list[Reservation | BaseException] = []
        for request, _ttl in batch:
            if request.order_id in recorded:
                answers.append(self._replayed(request, recorded[request.order_id]))
            elif first[request.order_id] is request:
                answers.append(decided[request.order_id])
            elif first[request.order_id].digest == request.digest:
                answers.append(decided[request.order_id])  # the same request twice in a batch
            else:
                answers.append(
                    ReservationConflict(
                        f"reservation {request.order_id} exists with different items"
                    )
                )
        return answers

    @staticmethod
    def _replayed(request: ReserveRequest, recorded: _Recorded) -> Reservation | BaseException:
        try:
            replay(request.order_id, recorded.status, recorded.digest, request.digest)
        except ReservationConflict as exc:
            return exc
        return Reservation(request.order_id, recorded.status, recorded.items)

    @staticmethod
    async def _recorded(conn: AsyncConnection, order_ids: list[str]) -> dict[str, _Recorded]:
        """The ledger's rows for these order ids (read without locks: a replay)."""
        headers = (await conn.execute(_LEDGER_HEADERS, {"order_ids": order_ids})).all()
        if not headers:
            return {}
        items: dict[str, list[LineItem]] = {}
        for row in await conn.execute(_LEDGER_ITEMS, {"order_ids": [h.order_id for h in headers]}):
            items.setdefault(row.order_id, []).append(LineItem(row.sku, row.quantity))
        return {
            h.order_id: _Recorded(
                ReservationStatus(h.status), h.request_hash, tuple(items.get(h.order_id, ()))
            )
            for h in headers
        }

    async def confirm(self, unit: UnitOfWork, order_id: str) -> Reservation:
        """Turns the reservation into a sale: stock and reserved both drop by the quantities."""
        return await self._apply(unit, order_id, Operation.CONFIRM)

    async def release(self, unit: UnitOfWork, order_id: str) -> Reservation:
        """Gives the reserved units back; for an unknown order, records that it was released."""
        return await self._apply(unit, order_id, Operation.RELEASE)

    async def _apply(self, unit: UnitOfWork, order_id: str, operation: Operation) -> Reservation:
        """The order's row is locked first, then its SKUs' rows in SKU order."""
        conn = unit.conn
        now = self._clock()
        header = await self._header(conn, order_id, lock=True)
        decision = transition(
            order_id, None if header is None else ReservationStatus(header.status), operation
        )
        if header is None:  # a release that came before its reservation: leave a marker
            await conn.execute(
                insert(reservation_orders).values(
                    order_id=order_id,
                    status=decision.status,
                    request_hash=None,
                    expires_at=None,
                    created_at=now,
                    updated_at=now,
                )
            )
            return Reservation(order_id, decision.status, ())
        items = await self._items(conn, order_id)
        if not decision.changed:
            return Reservation(order_id, decision.status, items)
        for item in items:
            change: dict[str, object] = {
                "reserved": inventory.c.reserved - item.quantity,
                "updated_at": now,
            }
            if decision.effect == StockEffect.SELL:
                change["stock"] = inventory.c.stock - item.quantity
            await conn.execute(update(inventory).where(inventory.c.sku == item.sku).values(change))
        await self._set_status(conn, order_id, decision.status, now)
        return Reservation(order_id, decision.status, items)

    async def apply_all(
        self, unit: UnitOfWork, operations: Sequence[tuple[str, Operation]]
    ) -> None:
        """Confirms and releases several orders in the unit of work, in the order given, each
        as `confirm` or `release` would; raises as they would for the first refused (the
        caller rolls the unit back). The orders' rows are locked first, in order id order,
        then their SKUs' rows in SKU order: one UPDATE per SKU and one per new status."""
        conn = unit.conn
        now = self._clock()
        order_ids = sorted({order_id for order_id, _ in operations})
        rows = await conn.execute(_LOCK_LEDGER, {"keys": order_ids})
        current = {row.order_id: ReservationStatus(row.status) for row in rows}
        items: dict[str, list[LineItem]] = {}
        if current:
            # Read without locks: only the ledger rows are the orders' locks (locking the items
            # too would hold gaps that reservation batches insert into while holding SKUs).
            for row in await conn.execute(_LEDGER_ITEMS, {"order_ids": sorted(current)}):
                items.setdefault(row.order_id, []).append(LineItem(row.sku, row.quantity))
        writes = plan(
            operations, current, {order_id: tuple(lines) for order_id, lines in items.items()}
        )
        if writes.stock:
            await conn.execute(
                _MOVE_STOCK,
                [  # sorted by SKU: the lock order
                    {"moved_sku": sku, "reserved_by": c.reserved, "stock_by": c.stock, "now": now}
                    for sku, c in writes.stock.items()
                ],
            )
        for status in sorted(set(writes.statuses.values())):
            changed = sorted(o for o, s in writes.statuses.items() if s == status)
            await conn.execute(
                _SET_STATUS, {"changed_ids": changed, "new_status": status, "now": now}
            )
        if writes.markers:
            await conn.execute(
                insert(reservation_orders),
                [
                    {
                        "order_id": order_id,
                        "status": ReservationStatus.RELEASED,
                        "request_hash": None,
                        "expires_at": None,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for order_id in writes.markers
                ],
            )

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
