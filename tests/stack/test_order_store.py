"""Orders against MariaDB: Idempotency-Key claims, the order and its event in one transaction,
concurrent claims and orders written together (and each alone when the batch cannot decide
for it), guarded saga transitions, deadline cancellation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest
from opentelemetry.sdk.trace import TracerProvider
from sqlalchemy import event, select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from commerce_devstack.endpoints import Endpoints
from commerce_services.db.settings import DatabaseSettings
from commerce_services.order.migrations import upgrade
from commerce_services.order.model import (
    ClaimLost,
    IdempotencyConflict,
    OrderLine,
    OrderNotFound,
    OrderStatus,
    PlacementInProgress,
    request_hash,
)
from commerce_services.order.store import Claim, Order, OrderStore
from commerce_services.order.tables import orders, outbox, placements
from tests.stack.conftest import Clock
from tests.stack.migrations import migrator as _migrator
from tests.stack.order_writes import LEASE, write_order

LINES = (OrderLine("SKU-A", 2, Decimal("19.99")), OrderLine("SKU-B", 1, Decimal("5.00")))


@pytest.fixture(scope="session")
def order_settings(stack: Endpoints) -> DatabaseSettings:
    settings = DatabaseSettings.from_values(stack.service_settings("order"))
    upgrade(_migrator(stack, "order"))
    return settings


@pytest.fixture
async def order_engine(order_settings: DatabaseSettings) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(order_settings.database_url(), pool_size=20)
    yield engine
    await engine.dispose()


@pytest.fixture
def order_store(order_engine: AsyncEngine, clock: Clock) -> OrderStore:
    return OrderStore(order_engine, clock, timedelta(minutes=15))


async def _apply(
    store: OrderStore, order_id: str, event: str, reason: str | None = None
) -> OrderStatus | None:
    return await store.units.run(lambda unit: store.apply(unit, order_id, event, reason))


async def _events(engine: AsyncEngine, order_id: str) -> list[tuple[str, dict[str, object]]]:
    async with engine.connect() as conn:
        rows = await conn.execute(
            select(outbox.c.type, outbox.c.payload)
            .where(outbox.c.aggregateid == order_id)
            .order_by(outbox.c.created_at)
        )
        return [(row.type, json.loads(row.payload)) for row in rows]


async def test_order_and_its_event_are_written_together(
    order_store: OrderStore, order_engine: AsyncEngine, unique: str
) -> None:
    order = await write_order(order_store, f"user-{unique}", "key-1", LINES, "tok_visa")
    assert (order.status, order.total) == (OrderStatus.PENDING, Decimal("44.98"))
    assert (await order_store.get(order.order_id)).lines == LINES
    [(kind, payload)] = await _events(order_engine, order.order_id)
    assert kind == "order_created"
    assert payload["total"] == "44.98"  # money as a decimal string
    assert payload["items"] == [
        {"sku": "SKU-A", "quantity": 2, "unit_price": "19.99"},
        {"sku": "SKU-B", "quantity": 1, "unit_price": "5.00"},
    ]


async def test_one_claim_per_key_then_replays_and_conflicts(
    order_store: OrderStore, order_engine: AsyncEngine, unique: str
) -> None:
    user = f"user-{unique}"
    digest = request_hash(user, [("SKU-A", 2), ("SKU-B", 1)], "tok_visa")
    claims = await asyncio.gather(
        *(order_store.claim(user, "same-key", digest, LEASE) for _ in range(10)),
        return_exceptions=True,
    )
    won = [c for c in claims if isinstance(c, Claim)]
    assert len(won) == 1
    assert all(isinstance(c, PlacementInProgress) for c in claims if c not in won)
    order = await order_store.place(won[0], LINES, "EUR", "tok_visa")
    replay = await order_store.claim(user, "same-key", digest, LEASE)
    assert replay == order
    assert len(await _events(order_engine, order.order_id)) == 1  # one order, one event
    with pytest.raises(IdempotencyConflict):
        await order_store.claim(user, "same-key", "another body", LEASE)
    with pytest.raises(ClaimLost):  # a claim that already placed cannot place again
        await order_store.place(won[0], LINES, "EUR", "tok_visa")
    other_user = await write_order(order_store, f"other-{unique}", "same-key", LINES, "tok_visa")
    assert other_user.order_id != order.order_id  # keys are scoped to their user


async def test_saga_transitions_are_guarded(
    order_store: OrderStore, order_engine: AsyncEngine, unique: str
) -> None:
    order = await write_order(order_store, f"user-{unique}", "k", LINES, "tok_visa")
    results = await asyncio.gather(
        _apply(order_store, order.order_id, "payment_succeeded"),
        _apply(order_store, order.order_id, "payment_succeeded"),  # duplicate delivery
        _apply(order_store, order.order_id, "payment_failed", "payment_declined"),  # late
    )
    moved = [r for r in results if r is not None]
    assert len(moved) == 1  # one of the three moved the order; the others changed nothing
    final = await order_store.get(order.order_id)
    events = [kind for kind, _ in await _events(order_engine, order.order_id)]
    outcome = "order_completed" if moved[0] == OrderStatus.COMPLETED else "order_cancelled"
    # Exactly one saga outcome, whatever the race order (the test clock stands still, so the
    # rows' timestamps do not order them).
    assert sorted(events) == sorted(["order_created", outcome])
    assert final.status == moved[0]
    assert await _apply(order_store, order.order_id, "payment_succeeded") is None


async def test_overdue_pending_orders_are_cancelled_completed_ones_are_not(
    order_store: OrderStore, order_engine: AsyncEngine, clock: Clock, unique: str
) -> None:
    stuck = await write_order(order_store, f"user-{unique}", "stuck", LINES, "tok_visa")
    paid = await write_order(order_store, f"user-{unique}", "paid", LINES, "tok_visa")
    await _apply(order_store, paid.order_id, "payment_succeeded")
    clock.now += timedelta(minutes=16)
    cancelled: list[str] = []
    while batch := await order_store.cancel_overdue():
        cancelled += batch
    assert stuck.order_id in cancelled
    assert paid.order_id not in cancelled
    final = await order_store.get(stuck.order_id)
    assert (final.status, final.cancel_reason) == (OrderStatus.CANCELLED, "reservation_expired")
    assert (await _events(order_engine, stuck.order_id))[-1] == (
        "order_cancelled",
        {"order_id": stuck.order_id, "reason": "reservation_expired"},
    )
    async with order_engine.connect() as conn:
        status = (
            await conn.execute(select(orders.c.status).where(orders.c.order_id == paid.order_id))
        ).scalar_one()
    assert status == "COMPLETED"


class Statements:
    """Counts the statements an engine sends, by their first words."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.sent: list[str] = []
        event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, conn: object, cursor: object, statement: str, *rest: object) -> None:
        self.sent.append(" ".join(statement.split()[:3]))

    def count(self, start: str) -> int:
        return sum(1 for sent in self.sent if sent.startswith(start))


async def test_concurrent_claims_are_inserted_together_and_a_taken_key_goes_alone(
    order_store: OrderStore, order_engine: AsyncEngine, unique: str
) -> None:
    user = f"user-{unique}"
    digest = request_hash(user, [("SKU-A", 1)], "tok_visa")
    statements = Statements(order_engine)
    fresh = await asyncio.gather(
        *(order_store.claim(user, f"k{n}", digest, LEASE) for n in range(8))
    )
    assert all(isinstance(c, Claim) for c in fresh)
    assert statements.count("INSERT INTO placements") == 1  # one statement for the eight

    statements.sent.clear()
    again = await asyncio.gather(
        *(order_store.claim(user, f"k{n}", digest, LEASE) for n in (8, 9, 3)),
        return_exceptions=True,
    )
    assert [type(c) for c in again] == [Claim, Claim, PlacementInProgress]
    # The batch met k3's earlier claim: rolled back, then each claimed on its own.
    assert statements.count("INSERT INTO placements") == 1 + 3
    owners = {c.order_id: c.owner for c in [*fresh, *again] if isinstance(c, Claim)}
    async with order_engine.connect() as conn:
        rows = await conn.execute(
            select(placements.c.order_id, placements.c.owner).where(
                placements.c.order_id.in_(list(owners))
            )
        )
        assert {row.order_id: row.owner for row in rows} == owners  # one owner per key


async def test_concurrent_orders_are_written_together_each_in_its_own_trace_and_a_lost_claim_alone(
    order_store: OrderStore, order_engine: AsyncEngine, unique: str
) -> None:
    user = f"user-{unique}"
    digest = request_hash(user, [("SKU-A", 2), ("SKU-B", 1)], "tok_visa")
    claims = await asyncio.gather(
        *(order_store.claim(user, f"k{n}", digest, LEASE) for n in range(4))
    )
    assert all(isinstance(c, Claim) for c in claims)
    claimed = [c for c in claims if isinstance(c, Claim)]
    tracer = TracerProvider().get_tracer(__name__)

    async def place(claim: Claim) -> tuple[str, Order]:
        with tracer.start_as_current_span("POST /orders") as span:
            order = await order_store.place(claim, LINES, "EUR", "tok_visa")
            return format(span.get_span_context().trace_id, "032x"), order

    statements = Statements(order_engine)
    placed = await asyncio.gather(*(place(c) for c in claimed[:3]))
    assert statements.count("UPDATE placements SET") == 1  # the three in one transaction
    assert statements.count("INSERT INTO orders") == 1
    async with order_engine.connect() as conn:
        rows = await conn.execute(
            select(outbox.c.aggregateid, outbox.c.traceparent).where(
                outbox.c.aggregateid.in_([o.order_id for _, o in placed])
            )
        )
        traces = {row.aggregateid: row.traceparent for row in rows}
    assert {o.order_id: traces[o.order_id].split("-")[1] for _, o in placed} == {
        o.order_id: trace for trace, o in placed
    }
    for _, order in placed:
        assert await order_store.get(order.order_id) == order

    lost = claimed[3]
    assert await order_store.abandon(lost)  # the sweep's doing, say
    other = await order_store.claim(user, "k-other", digest, LEASE)
    assert isinstance(other, Claim)
    statements.sent.clear()
    results = await asyncio.gather(
        order_store.place(other, LINES, "EUR", "tok_visa"),
        order_store.place(lost, LINES, "EUR", "tok_visa"),
        return_exceptions=True,
    )
    assert isinstance(results[0], Order)
    assert isinstance(results[1], ClaimLost)
    assert statements.count("UPDATE placements SET") == 1 + 2  # the batch, then each alone
    with pytest.raises(OrderNotFound):
        await order_store.get(lost.order_id)
