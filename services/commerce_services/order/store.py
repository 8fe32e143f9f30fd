"""Orders in MariaDB, each change with its event in the same transaction (the outbox).

Guarantees:
- claim: an Idempotency-Key is claimed (one `placements` row) before anything is reserved, so
  of concurrent requests with the same key exactly one owns the placement; the others replay
  its order, wait, or conflict, and never touch its reservation.
- place: the order, its items, `order_created` and the claim turning PLACED are one
  transaction, conditional on the claim still being the caller's; a caller that lost its claim
  (taken over after the lease, or abandoned by the sweep) writes nothing.
- Concurrent claims, and concurrent placements, of one process are written together (group
  commit, db/group_commit.py): one multi-row statement per table and one commit for all of
  them. A batch that meets anything but the common case (a key claimed before, a claim lost)
  is rolled back whole, and each of its requests is then written on its own as above, so
  every request gets its own answer.
- abandon: a claim turns ABANDONED only while its owner holds it, or by the sweep once the
  lease ran out; only then is its reservation released, so a release never hits an order that
  was written.
- apply: a saga event moves a PENDING order once, in the caller's unit of work; the order row
  is locked first, so a late or duplicate event never moves a terminal order, and the resulting
  `order_completed` or `order_cancelled` is written with the change.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

from prometheus_client import Counter
from sqlalchemy import ColumnElement, bindparam, delete, insert, select, tuple_, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from commerce_services.db.group_commit import GroupCommit
from commerce_services.db.locking_reads import locked_by_key
from commerce_services.db.outages import is_outage
from commerce_services.db.transactions import DUPLICATE_KEY, mysql_code, retry_transaction
from commerce_services.db.unit_of_work import UnitOfWork, UnitsOfWork
from commerce_services.events.outbox import Outbox, OutboxEvent, current_traceparent
from commerce_services.order.model import (
    AttemptRolledBack,
    CancelReason,
    ClaimDecision,
    ClaimLost,
    ClaimState,
    ClaimView,
    IdempotencyConflict,
    OrderLine,
    OrderNotFound,
    OrderStatus,
    PlacementInProgress,
    decide_claim,
    next_status,
    order_id_for,
    total,
    transition,
)
from commerce_services.order.tables import order_items, orders, outbox, placements

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


@dataclass(frozen=True)
class Claim:
    """A request's ownership of the placement of one order (its `placements` row)."""

    order_id: str
    user_id: str
    idempotency_key: str
    owner: str
    # Taken over from an attempt that gave it up or died: that attempt may have reserved.
    continued: bool = False


def _owned(claim: Claim) -> tuple[ColumnElement[bool], ...]:
    return (
        placements.c.order_id == claim.order_id,
        placements.c.owner == claim.owner,
        placements.c.state == ClaimState.IN_PROGRESS,
    )


@dataclass(frozen=True)
class _NewClaim:
    order_id: str
    request_digest: str
    owner: str


@dataclass(frozen=True)
class _Placing:
    claim: Claim
    order: Order
    payment_token: str
    traceparent: str | None  # the request's trace, which its order_created continues


class _Uncommon(Exception):
    """A batch met a case the batch does not decide: each request goes on its own."""


def _order_created(placing: _Placing) -> OutboxEvent:
    order = placing.order
    return OutboxEvent(
        AGGREGATE,
        order.order_id,
        "order_created",
        {
            "order_id": order.order_id,
            "user_id": order.user_id,
            "items": [
                {"sku": line.sku, "quantity": line.quantity, "unit_price": line.unit_price}
                for line in order.lines
            ],
            "total": order.total,
            "currency": order.currency,
            "payment_token": placing.payment_token,
            "deadline": order.deadline.isoformat(),
        },
    )


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


# A saga step's conditional UPDATE of one order (`apply`) or of a fetch's orders with the same
# outcome (`apply_all`, under the locks of `_LOCK_ORDERS`), built once, its values passed apart
# (SQLAlchemy builds nothing per event; bind names differ from the columns', as an UPDATE
# requires).
_MOVE = (
    update(orders)
    .where(
        orders.c.order_id.in_(bindparam("moved_ids", expanding=True)),
        orders.c.status.in_(bindparam("sources", expanding=True)),
    )
    .values(
        status=bindparam("target"), cancel_reason=bindparam("reason"), updated_at=bindparam("now")
    )
)
_LOCK_ORDERS = locked_by_key(orders.c.order_id, orders.c.order_id, orders.c.status)


@dataclass(frozen=True)
class SagaStep:
    """A saga event for an order, as the consumer received it."""

    order_id: str
    event: str  # payment_succeeded, payment_failed, ...
    reason: str | None = None
    traceparent: str | None = None  # the trace the event belongs to


def _saga_event(order_id: str, new: OrderStatus, reason: str | None) -> OutboxEvent:
    """The event announcing an order's end: `order_completed`, or `order_cancelled` with why."""
    payload: dict[str, object] = {"order_id": order_id}
    if reason is not None:
        payload["reason"] = reason
    event_type = "order_completed" if new == OrderStatus.COMPLETED else "order_cancelled"
    return OutboxEvent(AGGREGATE, order_id, event_type, payload)


class OrderStore:
    def __init__(
        self, engine: AsyncEngine, clock: Callable[[], datetime], deadline: timedelta
    ) -> None:
        self._engine = engine
        self.units = UnitsOfWork(engine)  # for callers that start the work (sweeps, tests)
        self._clock = clock
        self._deadline = deadline
        self._outbox = Outbox(outbox)
        self._claims: GroupCommit[_NewClaim, bool] = GroupCommit(self._insert_claims)
        self._placing: GroupCommit[_Placing, Order] = GroupCommit(self._write_orders)

    # ---- placements: the claim an Idempotency-Key makes before anything is reserved ------

    async def claim(
        self, user_id: str, idempotency_key: str, request_digest: str, lease: timedelta
    ) -> Claim | Order:
        """Claims the order id the key derives for this request, or answers from an earlier
        claim of it: the written Order for a replay. Raises IdempotencyConflict (another body),
        PlacementInProgress (the same body, its owner still at work) or AttemptRolledBack
        (abandoned). One INSERT when the key is new."""
        order_id = order_id_for(user_id, idempotency_key)
        owner = uuid.uuid4().hex
        for _ in range(3):  # the row may change between our INSERT and our read
            if await self._claims.submit(_NewClaim(order_id, request_digest, owner)):
                return Claim(order_id, user_id, idempotency_key, owner)
            now = self._clock()
            async with self._engine.begin() as conn:
                row = (
                    await conn.execute(select(placements).where(placements.c.order_id == order_id))
                ).one_or_none()
                if row is None:
                    continue  # withdrawn meanwhile: claim it afresh
                seen = ClaimView(ClaimState(row.state), row.request_hash, row.owner, row.claimed_at)
                decision = decide_claim(seen, request_digest, now, lease)
                if decision == ClaimDecision.CONFLICT:
                    raise IdempotencyConflict(
                        "this Idempotency-Key was used for a different request"
                    )
                if decision == ClaimDecision.SPENT:
                    raise AttemptRolledBack(order_id)
                if decision == ClaimDecision.WAIT:
                    raise PlacementInProgress(order_id)
                if decision == ClaimDecision.TAKE_OVER:
                    taken = await conn.execute(
                        update(placements)
                        .where(
                            placements.c.order_id == order_id,
                            placements.c.state == ClaimState.IN_PROGRESS,
                            placements.c.claimed_at == row.claimed_at,
                            placements.c.owner.is_(None)
                            if row.owner is None
                            else placements.c.owner == row.owner,
                        )
                        .values(owner=owner, claimed_at=now, updated_at=now)
                    )
                    if taken.rowcount == 1:
                        return Claim(order_id, user_id, idempotency_key, owner, continued=True)
                    continue
            return await self.get(order_id)  # REPLAY
        raise PlacementInProgress(order_id)

    async def _insert_claims(self, batch: Sequence[_NewClaim]) -> list[bool | BaseException]:
        """Inserts the claims; for each, whether it is new (False: its key was claimed before,
        and the caller reads the earlier claim). An outage fails them all; any other failure
        of the batch (a key claimed before) sends each on its own."""
        if len(batch) > 1:
            try:
                await self._insert_claim_rows(batch)
                return [True] * len(batch)
            except Exception as exc:
                if is_outage(exc):
                    raise
        answers: list[bool | BaseException] = []
        for claim in batch:
            try:
                await self._insert_claim_rows([claim])
                answers.append(True)
            except IntegrityError as exc:
                answers.append(False if mysql_code(exc) == DUPLICATE_KEY else exc)
            except Exception as exc:
                answers.append(exc)
        return answers

    @retry_transaction
    async def _insert_claim_rows(self, batch: Sequence[_NewClaim]) -> None:
        now = self._clock()
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(placements),
                [
                    {
                        "order_id": claim.order_id,
                        "request_hash": claim.request_digest,
                        "state": ClaimState.IN_PROGRESS,
                        "owner": claim.owner,
                        "claimed_at": now,
                        "released_at": None,
                        "updated_at": now,
                    }
                    for claim in batch
                ],
            )

    async def withdraw(self, claim: Claim) -> None:
        """Deletes a claim that reserved nothing (the request was refused), so the key is free."""
        async with self._engine.begin() as conn:
            await conn.execute(delete(placements).where(*_owned(claim)))

    async def relinquish(self, claim: Claim) -> None:
        """Gives the claim up without deciding: a retry with the same key continues it at once
        (it may find the stock already reserved); without one, the sweep abandons it."""
        async with self._engine.begin() as conn:
            await conn.execute(
                update(placements)
                .where(*_owned(claim))
                .values(owner=None, updated_at=self._clock())
            )

    async def abandon(self, claim: Claim) -> bool:
        """Decides that the claim's order will never be written. True when this request still
        owned it: only then may it release the reservation."""
        async with self._engine.begin() as conn:
            done = await conn.execute(
                update(placements)
                .where(*_owned(claim))
                .values(state=ClaimState.ABANDONED, owner=None, updated_at=self._clock())
            )
        return bool(done.rowcount == 1)

    async def abandon_stale(self, lease: timedelta, limit: int = 100) -> list[str]:
        """Abandons claims whose owner has held them longer than the lease (it died, or gave
        them up and no retry came); returns their order ids."""
        now = self._clock()
        async with self._engine.connect() as conn:
            stale = (
                await conn.execute(
                    select(placements.c.order_id, placements.c.claimed_at)
                    .where(
                        placements.c.state == ClaimState.IN_PROGRESS,
                        placements.c.claimed_at <= now - lease,
                    )
                    .order_by(placements.c.claimed_at)
                    .limit(limit)
                )
            ).all()
        abandoned = []
        for row in stale:
            async with self._engine.begin() as conn:
                done = await conn.execute(
                    update(placements)
                    .where(
                        placements.c.order_id == row.order_id,
                        placements.c.state == ClaimState.IN_PROGRESS,
                        placements.c.claimed_at == row.claimed_at,
                    )
                    .values(state=ClaimState.ABANDONED, owner=None, updated_at=now)
                )
            if done.rowcount == 1:
                abandoned.append(row.order_id)
        return abandoned

    async def unreleased(self, limit: int = 100) -> list[str]:
        """Abandoned placements whose reservation is not known to be released yet."""
        async with self._engine.connect() as conn:
            rows = await conn.execute(
                select(placements.c.order_id)
                .where(
                    placements.c.state == ClaimState.ABANDONED,
                    placements.c.released_at.is_(None),
                )
                .order_by(placements.c.claimed_at)
                .limit(limit)
            )
            return [row.order_id for row in rows]

    async def mark_released(self, order_id: str) -> None:
        now = self._clock()
        async with self._engine.begin() as conn:
            await conn.execute(
                update(placements)
                .where(
                    placements.c.order_id == order_id,
                    placements.c.state == ClaimState.ABANDONED,
                )
                .values(released_at=now, updated_at=now)
            )

    async def place(
        self, claim: Claim, lines: tuple[OrderLine, ...], currency: str, payment_token: str
    ) -> Order:
        """Writes the order, its items and `order_created` in one transaction with the claim
        turning PLACED; raises ClaimLost (and writes nothing) if the claim is no longer ours."""
        now = self._clock()
        order = Order(
            claim.order_id,
            claim.user_id,
            OrderStatus.PENDING,
            None,
            total(lines),
            currency,
            lines,
            now + self._deadline,
            now,
        )
        return await self._placing.submit(
            _Placing(claim, order, payment_token, current_traceparent())
        )

    async def _write_orders(self, batch: Sequence[_Placing]) -> list[Order | BaseException]:
        """Writes the orders together; an outage fails them all; anything else (a lost claim)
        sends each on its own, so only its own request fails."""
        if len(batch) > 1:
            try:
                await self._write_order_rows(batch)
                return [placing.order for placing in batch]
            except Exception as exc:
                if is_outage(exc):
                    raise
        answers: list[Order | BaseException] = []
        for placing in batch:
            try:
                await self._write_order_rows([placing])
                answers.append(placing.order)
            except _Uncommon:
                answers.append(ClaimLost(placing.claim.order_id))
            except Exception as exc:
                answers.append(exc)
        return answers

    @retry_transaction
    async def _write_order_rows(self, batch: Sequence[_Placing]) -> None:
        """One transaction for the batch; _Uncommon (nothing written) if a claim is lost."""
        now = self._clock()
        async with self._engine.begin() as conn:
            pairs = [(p.claim.order_id, p.claim.owner) for p in batch]
            placed = await conn.execute(
                update(placements)
                .where(
                    placements.c.order_id.in_([order_id for order_id, _ in pairs]),
                    tuple_(placements.c.order_id, placements.c.owner).in_(pairs),
                    placements.c.state == ClaimState.IN_PROGRESS,
                )
                .values(state=ClaimState.PLACED, owner=None, updated_at=now)
            )
            if placed.rowcount != len(batch):
                raise _Uncommon  # rolls the batch back
            await conn.execute(
                insert(orders),
                [
                    {
                        "order_id": p.order.order_id,
                        "user_id": p.order.user_id,
                        "status": OrderStatus.PENDING,
                        "cancel_reason": None,
                        "total": p.order.total,
                        "currency": p.order.currency,
                        "idempotency_key": p.claim.idempotency_key,
                        "deadline": p.order.deadline,
                        "created_at": p.order.created_at,
                        "updated_at": now,
                    }
                    for p in batch
                ],
            )
            await conn.execute(
                insert(order_items),
                [
                    {
                        "order_id": p.order.order_id,
                        "sku": line.sku,
                        "quantity": line.quantity,
                        "unit_price": line.unit_price,
                    }
                    for p in batch
                    for line in p.order.lines
                ],
            )
            await self._outbox.append_all(
                conn, [(_order_created(p), p.traceparent) for p in batch], now
            )

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

    async def get(self, order_id: str) -> Order:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(orders).where(orders.c.order_id == order_id))
            ).one_or_none()
            if row is None:
                raise OrderNotFound(order_id)
            lines = await self._lines(conn, [order_id])
        return _order(row, lines.get(order_id, ()))

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

    async def apply(
        self, unit: UnitOfWork, order_id: str, event: str, reason: str | None = None
    ) -> OrderStatus | None:
        """Applies a saga event in the unit of work; returns the new status, or None when the
        order is unknown or the event must not move it. One conditional UPDATE: InnoDB checks
        the status on the row it locks, so a late or duplicate event changes nothing."""
        change = transition(event)
        if change is None:
            return None
        new, now = change.target, self._clock()
        moved = await unit.conn.execute(
            _MOVE,
            {
                "moved_ids": [order_id],
                "sources": sorted(change.sources),
                "target": new,
                "reason": reason if new == OrderStatus.CANCELLED else None,
                "now": now,
            },
        )
        if moved.rowcount != 1:
            return None
        saga_event = _saga_event(order_id, new, reason if new == OrderStatus.CANCELLED else None)
        await self._outbox.append(unit.conn, saga_event, now)
        outcome, cause = new.value, reason or ""
        unit.after_commit(lambda: SAGA_OUTCOMES.labels(outcome, cause).inc())
        return new

    async def apply_all(self, unit: UnitOfWork, steps: Sequence[SagaStep]) -> None:
        """Applies saga events of one fetch in the unit of work, in their order, as `apply`
        does each: the orders' rows locked by one read, each event decided against the status
        the events before it left (`next_status`), then one UPDATE per outcome and one INSERT
        of the events: about three statements for the fetch instead of two per event. Each
        order event continues the trace of the event that caused it."""
        if not steps:
            return
        read = {
            row.order_id: OrderStatus(row.status)
            for row in await unit.conn.execute(
                _LOCK_ORDERS, {"keys": sorted({step.order_id for step in steps})}
            )
        }
        status = dict(read)
        ends: dict[str, tuple[OrderStatus, str | None]] = {}  # each moved order's last move
        written: list[tuple[OutboxEvent, str | None]] = []
        for step in steps:
            current = status.get(step.order_id)
            new = None if current is None else next_status(current, step.event)
            if new is None:
                continue  # unknown, or an event that must not move it
            status[step.order_id] = new
            reason = step.reason if new == OrderStatus.CANCELLED else None
            ends[step.order_id] = (new, reason)
            written.append((_saga_event(step.order_id, new, reason), step.traceparent))
        if not written:
            return
        moves: dict[tuple[OrderStatus, str | None], list[str]] = {}
        for order_id, end in ends.items():
            moves.setdefault(end, []).append(order_id)
        now = self._clock()
        for (new, reason), order_ids in moves.items():
            await unit.conn.execute(
                _MOVE,
                {
                    "moved_ids": order_ids,
                    "sources": sorted({read[order_id] for order_id in order_ids}),
                    "target": new,
                    "reason": reason,
                    "now": now,
                },
            )
            counted = SAGA_OUTCOMES.labels(new.value, reason or "")
            unit.after_commit(partial(counted.inc, len(order_ids)))
        await self._outbox.append_all(unit.conn, written, now)

    async def _expire(self, unit: UnitOfWork, order_id: str) -> OrderStatus | None:
        return await self.apply(
            unit, order_id, "deadline_passed", CancelReason.RESERVATION_EXPIRED.value
        )

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
            moved = await self.units.run(partial(self._expire, order_id=order_id))
            if moved is not None:
                cancelled.append(order_id)
        return cancelled
