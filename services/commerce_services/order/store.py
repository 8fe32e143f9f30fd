"""Orders in MariaDB, each change with its event in the same transaction (the outbox).

Guarantees:
- place: the order, its items and `order_created` are one transaction; an Idempotency-Key
  replay with the same request returns the same order (one row, one event, also when the
  replays race); with a different request it is an IdempotencyConflict and changes nothing.
- apply: a saga event moves a PENDING order once; the order row is locked first, so a late or
  duplicate event never moves a terminal order, and the resulting `order_completed` or
  `order_cancelled` is written with the change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from prometheus_client import Counter
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from commerce_services.db.transactions import (
    DUPLICATE_KEY,
    after_commit,
    mysql_code,
    retry_transaction,
)
from commerce_services.events.outbox import Outbox, OutboxEvent
from commerce_services.order.model import (
    CancelReason,
    IdempotencyConflict,
    OrderLine,
    OrderNotFound,
    OrderStatus,
    next_status,
    order_id_for,
    request_hash,
    total,
)
from commerce_services.order.tables import order_items, orders, outbox

AGGREGATE = "order"

SAGA_OUTCOMES = Counter(
    "commerce_saga_outcomes_total", "Orders that reached a final state", ["status", "reason"]
)


@dataclass(frozen=True)
class Order:
    order_id: str
    user_id: str
    status: OrderStatus
    cancel_reason: str | None
    total: Decimal
    currency: str
    lines: tuple[OrderLine, ...]
    deadline: datetime
    created_at: datetime


def _order(row: Any, lines: tuple[OrderLine, ...]) -> Order:  # a row of `orders`
    return Order(
        row.order_id,
        row.user_id,
        OrderStatus(row.status),
        row.cancel_reason,
        row.total,
        row.currency,
        lines,
        row.deadline,
        row.created_at,
    )


class OrderStore:
    def __init__(
        self, engine: AsyncEngine, clock: Callable[[], datetime], deadline: timedelta
    ) -> None:
        self._engine = engine
        self._clock = clock
        self._deadline = deadline
        self._outbox = Outbox(outbox)

    @retry_transaction
    async def place(
        self,
        user_id: str,
        idempotency_key: str,
        lines: tuple[OrderLine, ...],
        currency: str,
        payment_token: str,
    ) -> Order:
        order_id = order_id_for(user_id, idempotency_key)
        digest = request_hash(user_id, lines, payment_token)
        now = self._clock()
        order = Order(
            order_id,
            user_id,
            OrderStatus.PENDING,
            None,
            total(lines),
            currency,
            lines,
            now + self._deadline,
            now,
        )
        try:
            async with self._engine.begin() as conn:
                await conn.execute(
                    insert(orders).values(
                        order_id=order_id,
                        user_id=user_id,
                        status=OrderStatus.PENDING,
                        cancel_reason=None,
                        total=order.total,
                        currency=currency,
                        idempotency_key=idempotency_key,
                        request_hash=digest,
                        deadline=order.deadline,
                        created_at=now,
                        updated_at=now,
                    )
                )
                await conn.execute(
                    insert(order_items),
                    [
                        {
                            "order_id": order_id,
                            "sku": line.sku,
                            "quantity": line.quantity,
                            "unit_price": line.unit_price,
                        }
                        for line in lines
                    ],
                )
                await self._outbox.append(
                    conn,
                    OutboxEvent(
                        AGGREGATE,
                        order_id,
                        "order_created",
                        {
                            "order_id": order_id,
                            "user_id": user_id,
                            "items": [
                                {
                                    "sku": line.sku,
                                    "quantity": line.quantity,
                                    "unit_price": line.unit_price,
                                }
                                for line in lines
                            ],
                            "total": order.total,
                            "currency": currency,
                            "payment_token": payment_token,
                            "deadline": order.deadline.isoformat(),
                        },
                    ),
                    now,
                )
        except IntegrityError as exc:
            if mysql_code(exc) != DUPLICATE_KEY:
                raise
            existing_hash, existing = await self._find(order_id)
            if existing_hash != digest:
                raise IdempotencyConflict(
                    "this Idempotency-Key was used for a different request"
                ) from exc
            return existing
        return order

    async def for_user(self, user_id: str, limit: int = 50) -> list[Order]:
        """The user's orders, newest first: two queries, whatever the number of orders."""
        async with self._engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(orders)
                    .where(orders.c.user_id == user_id)
                    .order_by(orders.c.created_at.desc())
                    .limit(limit)
                )
            ).all()
            lines = await self._lines(conn, [row.order_id for row in rows])
        return [_order(row, lines.get(row.order_id, ())) for row in rows]

    async def exists(self, order_id: str) -> bool:
        async with self._engine.connect() as conn:
            found = await conn.execute(
                select(orders.c.order_id).where(orders.c.order_id == order_id)
            )
            return found.one_or_none() is not None

    async def get(self, order_id: str) -> Order:
        return (await self._find(order_id))[1]

    async def _find(self, order_id: str) -> tuple[str, Order]:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(orders).where(orders.c.order_id == order_id))
            ).one_or_none()
            if row is None:
                raise OrderNotFound(order_id)
            lines = await self._lines(conn, [order_id])
        return row.request_hash, _order(row, lines.get(order_id, ()))

    @staticmethod
    async def _lines(
        conn: AsyncConnection, order_ids: list[str]
    ) -> dict[str, tuple[OrderLine, ...]]:
        found: dict[str, list[OrderLine]] = {}
        if order_ids:
            items = await conn.execute(
                select(order_items)
                .where(order_items.c.order_id.in_(order_ids))
                .order_by(order_items.c.order_id, order_items.c.sku)
            )
            for item in items:
                found.setdefault(item.order_id, []).append(
                    OrderLine(item.sku, item.quantity, item.unit_price)
                )
        return {order_id: tuple(lines) for order_id, lines in found.items()}

    async def apply_in(
        self, conn: AsyncConnection, order_id: str, event: str, reason: str | None = None
    ) -> OrderStatus | None:
        """Applies a saga event in the caller's transaction; returns the new status, or None
        when the order is unknown or the event must not move it."""
        row = (
            await conn.execute(
                select(orders.c.status).where(orders.c.order_id == order_id).with_for_update()
            )
        ).one_or_none()
        if row is None:
            return None
        new = next_status(OrderStatus(row.status), event)
        if new is None:
            return None
        now = self._clock()
        await conn.execute(
            update(orders)
            .where(orders.c.order_id == order_id)
            .values(
                status=new,
                cancel_reason=reason if new == OrderStatus.CANCELLED else None,
                updated_at=now,
            )
        )
        event_type = "order_completed" if new == OrderStatus.COMPLETED else "order_cancelled"
        payload: dict[str, object] = {"order_id": order_id}
        if reason is not None and new == OrderStatus.CANCELLED:
            payload["reason"] = reason
        await self._outbox.append(conn, OutboxEvent(AGGREGATE, order_id, event_type, payload), now)
        outcome, cause = new.value, reason or ""
        after_commit(conn, lambda: SAGA_OUTCOMES.labels(outcome, cause).inc())
        return new

    @retry_transaction
    async def apply(
        self, order_id: str, event: str, reason: str | None = None
    ) -> OrderStatus | None:
        async with self._engine.begin() as conn:
            return await self.apply_in(conn, order_id, event, reason)

    async def cancel_overdue(self, limit: int = 100) -> list[str]:
        """Cancels PENDING orders past their deadline (reason reservation_expired)."""
        async with self._engine.connect() as conn:
            due = [
                row.order_id
                for row in await conn.execute(
                    select(orders.c.order_id)
                    .where(
                        orders.c.status == OrderStatus.PENDING, orders.c.deadline <= self._clock()
                    )
                    .order_by(orders.c.deadline)
                    .limit(limit)
                )
            ]
        cancelled = []
        for order_id in due:
            moved = await self.apply(
                order_id, "deadline_passed", CancelReason.RESERVATION_EXPIRED.value
            )
            if moved is not None:
                cancelled.append(order_id)
        return cancelled
