"""Payment and the order's reaction to it, against MariaDB: one payment per order, ever; the
gateway's idempotency key protects against a crash between charging and committing; declines
and timeouts become payment_failed; the order moves once and late events change nothing."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt

from commerce_devstack.endpoints import Endpoints
from commerce_services.db.settings import DatabaseSettings
from commerce_services.db.transactions import DUPLICATE_KEY, RETRYABLE, mysql_code
from commerce_services.db.unit_of_work import UnitsOfWork
from commerce_services.events.envelope import Event, PermanentError
from commerce_services.order.migrations import upgrade as upgrade_orders
from commerce_services.order.model import OrderLine, OrderStatus
from commerce_services.order.payment_events import payment_event_handlers, payment_events_together
from commerce_services.order.store import OrderStore
from commerce_services.order.tables import outbox as order_outbox
from commerce_services.payment.charging import PaymentProcessor
from commerce_services.payment.gateway import Charge, FakeGateway, Refund
from commerce_services.payment.migrations import upgrade
from commerce_services.payment.settings import PaymentSettings
from commerce_services.payment.tables import outbox, payments
from commerce_services.runtime.clock import utc_now
from tests.stack.access_tokens import AUTH_SETTINGS
from tests.stack.migrations import migrator as _migrator
from tests.stack.order_writes import write_order


class CountingGateway(FakeGateway):
    def __init__(self) -> None:
        super().__init__(timeout_s=0.01)
        self.calls = 0

    async def charge(
        self, idempotency_key: str, amount: Decimal, currency: str, token: str
    ) -> Charge:
        self.calls += 1
        return await super().charge(idempotency_key, amount, currency, token)


@pytest.fixture(scope="session")
def payment_settings(stack: Endpoints) -> PaymentSettings:
    settings = PaymentSettings.from_values({**stack.service_settings("payment"), **AUTH_SETTINGS})
    upgrade(_migrator(stack, "payment"))
    return settings


@pytest.fixture
async def payment_engine(payment_settings: PaymentSettings) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(payment_settings.database_url())
    yield engine
    await engine.dispose()


@pytest.fixture
async def order_engine(stack: Endpoints) -> AsyncIterator[AsyncEngine]:
    settings = DatabaseSettings.from_values(stack.service_settings("order"))
    upgrade_orders(settings)
    engine = create_async_engine(settings.database_url())
    yield engine
    await engine.dispose()


def payment_event(order_id: str, kind: str, reason: str | None = None) -> Event:
    payload = {"order_id": order_id, **({"reason": reason} if reason else {})}
    return Event("commerce.payment.events", 0, 0, order_id, str(uuid.uuid4()), kind, payload)


def order_created(order_id: str, token: str, total: str = "44.98") -> Event:
    return Event(
        topic="commerce.order.events",
        partition=0,
        offset=0,
        key=order_id,
        event_id=str(uuid.uuid4()),
        event_type="order_created",
        payload={"order_id": order_id, "total": total, "currency": "EUR", "payment_token": token},
    )


async def _payment(
    engine: AsyncEngine, order_id: str
) -> tuple[list[tuple[str, str | None]], list[tuple[str, dict[str, str]]]]:
    async with engine.connect() as conn:
        rows = (
            await conn.execute(
                select(payments.c.status, payments.c.reason).where(payments.c.order_id == order_id)
            )
        ).all()
        events = (
            await conn.execute(
                select(outbox.c.type, outbox.c.payload)
                .where(outbox.c.aggregateid == order_id)
                .order_by(outbox.c.created_at)
            )
        ).all()
    return ([(r.status, r.reason) for r in rows], [(e.type, json.loads(e.payload)) for e in events])


@pytest.mark.parametrize(
    ("token", "status", "reason", "event_type", "gateway_calls"),
    [
        ("tok_visa", "SUCCEEDED", None, "payment_succeeded", 1),
        ("tok_declined", "FAILED", "declined", "payment_failed", 1),
        ("tok_timeout", "FAILED", "timeout", "payment_failed", 3),  # retried, then given up
    ],
)
async def test_one_payment_per_order_with_its_event(
    payment_engine: AsyncEngine,
    unique: str,
    token: str,
    status: str,
    reason: str | None,
    event_type: str,
    gateway_calls: int,
) -> None:
    gateway = CountingGateway()
    processor = PaymentProcessor(gateway, utc_now, attempts=3, backoff_s=0.01)
    order_id = f"o-{unique}"
    for _ in range(2):  # the same order announced twice (two event ids): still one payment
        async with UnitsOfWork(payment_engine).begin() as unit:
            await processor.on_order_created(unit, order_created(order_id, token))
    rows, events = await _payment(payment_engine, order_id)
    assert rows == [(status, reason)]
    assert [kind for kind, _ in events] == [event_type]
    assert events[0][1]["amount"] == "44.98"
    assert gateway.calls == gateway_calls


class _CrashBeforeCommit(Exception):
    pass


async def _charge_then_crash(
    engine: AsyncEngine, processor: PaymentProcessor, event: Event
) -> None:
    async with UnitsOfWork(engine).begin() as unit:
        await processor.on_order_created(unit, event)
        raise _CrashBeforeCommit  # charged, but the payment row never committed


async def test_a_crash_after_charging_does_not_charge_twice(
    payment_engine: AsyncEngine, unique: str
) -> None:
    gateway = CountingGateway()
    processor = PaymentProcessor(gateway, utc_now)
    event = order_created(f"crash-{unique}", "tok_visa")
    with pytest.raises(_CrashBeforeCommit):
        await _charge_then_crash(payment_engine, processor, event)
    async with UnitsOfWork(payment_engine).begin() as unit:  # the redelivery
        await processor.on_order_created(unit, event)
    rows, _ = await _payment(payment_engine, f"crash-{unique}")
    assert rows == [("SUCCEEDED", None)]
    first, again = (
        await gateway.charge(f"crash-{unique}", Decimal("1"), "EUR", "tok_visa"),
        await gateway.charge(f"crash-{unique}", Decimal("1"), "EUR", "tok_visa"),
    )
    assert first == again  # the idempotency key returned the first charge both times


def order_cancelled(order_id: str, reason: str = "reservation_expired") -> Event:
    return Event(
        topic="commerce.order.events",
        partition=0,
        offset=1,
        key=order_id,
        event_id=str(uuid.uuid4()),
        event_type="order_cancelled",
        payload={"order_id": order_id, "reason": reason},
    )


class CountingRefunds(FakeGateway):
    def __init__(self) -> None:
        super().__init__()
        self.refunds = 0

    async def refund(
        self, idempotency_key: str, charge_reference: str, amount: Decimal, currency: str
    ) -> Refund:
        self.refunds += 1
        return await super().refund(idempotency_key, charge_reference, amount, currency)


@pytest.mark.parametrize(
    ("token", "final", "events", "refunds"),
    [
        # The order was cancelled at its deadline while the charge was on its way: money back.
        ("tok_visa", "REFUNDED", ["payment_succeeded", "payment_refunded"], 1),
        # Declined: nothing was taken, nothing to give back.
        ("tok_declined", "FAILED", ["payment_failed"], 0),
    ],
)
async def test_a_cancelled_order_keeps_no_money(
    payment_engine: AsyncEngine,
    unique: str,
    token: str,
    final: str,
    events: list[str],
    refunds: int,
) -> None:
    gateway = CountingRefunds()
    processor = PaymentProcessor(gateway, utc_now)
    order_id = f"cancel-{unique}"
    async with UnitsOfWork(payment_engine).begin() as unit:
        await processor.on_order_created(unit, order_created(order_id, token))
    for _ in range(2):  # a duplicate cancellation refunds nothing more
        async with UnitsOfWork(payment_engine).begin() as unit:
            await processor.on_order_cancelled(unit, order_cancelled(order_id))
    rows, written = await _payment(payment_engine, order_id)
    assert [status for status, _ in rows] == [final]
    assert [kind for kind, _ in written] == events
    assert gateway.refunds == refunds
    if refunds:
        assert written[1][1] == {
            "order_id": order_id,
            "payment_id": written[0][1]["payment_id"],
            "amount": "44.98",
            "currency": "EUR",
            "reason": "reservation_expired",
        }


async def test_an_order_cancelled_before_its_charge_is_never_charged(
    payment_engine: AsyncEngine, unique: str
) -> None:
    gateway = CountingGateway()
    processor = PaymentProcessor(gateway, utc_now)
    order_id = f"void-{unique}"
    async with UnitsOfWork(payment_engine).begin() as unit:
        await processor.on_order_cancelled(unit, order_cancelled(order_id))
    # order_created replayed later (from the DLQ or failed_events): no charge.
    async with UnitsOfWork(payment_engine).begin() as unit:
        await processor.on_order_created(unit, order_created(order_id, "tok_visa"))
    rows, written = await _payment(payment_engine, order_id)
    assert rows == [("VOIDED", "order_cancelled")]
    assert written == []
    assert gateway.calls == 0


async def test_a_fetch_of_order_events_is_settled_together_in_order(
    payment_engine: AsyncEngine, unique: str
) -> None:
    gateway = CountingGateway()
    processor = PaymentProcessor(gateway, utc_now, attempts=1)
    paid, declined, voided = (f"{kind}-{unique}" for kind in ("paid", "declined", "voided"))
    async with UnitsOfWork(payment_engine).begin() as unit:
        await processor.on_order_created(unit, order_created(f"before-{unique}", "tok_visa"))
    fetch = [
        order_created(paid, "tok_visa"),
        order_created(declined, "tok_declined"),
        order_created(paid, "tok_visa"),  # announced twice: charged once
        order_created(f"before-{unique}", "tok_visa"),  # charged in an earlier fetch
        order_cancelled(voided),  # before its order_created: that one charges nothing
        order_created(voided, "tok_visa"),
    ]
    fetch[0].headers["traceparent"] = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    async with UnitsOfWork(payment_engine).begin() as unit:
        await processor.together(unit, fetch)
    assert gateway.calls == 1 + 2
    rows, written = await _payment(payment_engine, declined)
    assert (rows, [kind for kind, _ in written]) == ([("FAILED", "declined")], ["payment_failed"])
    rows, written = await _payment(payment_engine, paid)
    assert (rows, [kind for kind, _ in written]) == ([("SUCCEEDED", None)], ["payment_succeeded"])
    assert await _traceparent(payment_engine, paid) == fetch[0].headers["traceparent"]
    assert (await _payment(payment_engine, voided)) == ([("VOIDED", "order_cancelled")], [])
    assert len((await _payment(payment_engine, f"before-{unique}"))[0]) == 1


async def _traceparent(engine: AsyncEngine, order_id: str) -> str | None:
    async with engine.connect() as conn:
        found: str | None = await conn.scalar(
            select(outbox.c.traceparent).where(outbox.c.aggregateid == order_id)
        )
    return found


class SlowGateway(CountingGateway):
    """Answers after a while, so two consumers' transactions overlap around the charge."""

    async def charge(
        self, idempotency_key: str, amount: Decimal, currency: str, token: str
    ) -> Charge:
        await asyncio.sleep(0.2)
        return await super().charge(idempotency_key, amount, currency, token)


async def test_two_consumers_charging_one_order_at_once_write_one_payment(
    payment_engine: AsyncEngine, unique: str
) -> None:
    """A redelivery racing the first delivery (a rebalance): one alone, one in a fetch."""
    gateway = SlowGateway()
    processor = PaymentProcessor(gateway, utc_now)
    order_id = f"race-{unique}"

    async def deliver(fetch: list[Event]) -> None:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception(lambda exc: mysql_code(exc) in RETRYABLE | {DUPLICATE_KEY}),
            stop=stop_after_attempt(3),
            reraise=True,
        ):
            with attempt:  # as the consumer retries a conflict with another transaction
                async with UnitsOfWork(payment_engine).begin() as unit:
                    await processor.together(unit, fetch)

    await asyncio.gather(
        deliver([order_created(order_id, "tok_visa")]),
        deliver(
            [order_created(f"other-{unique}", "tok_visa"), order_created(order_id, "tok_visa")]
        ),
    )
    rows, written = await _payment(payment_engine, order_id)
    assert rows == [("SUCCEEDED", None)]
    assert [kind for kind, _ in written] == ["payment_succeeded"]


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"order_id": "x", "total": "abc", "currency": "EUR", "payment_token": "t"},
        {"order_id": "x", "total": "-1", "currency": "EUR", "payment_token": "t"},
        {"order_id": "x", "total": "1", "currency": "EURO", "payment_token": "t"},
    ],
)
async def test_malformed_order_events_are_permanent(
    payment_engine: AsyncEngine, payload: dict[str, str]
) -> None:
    processor = PaymentProcessor(FakeGateway(), utc_now)
    event = Event("t", 0, 0, "k", "e", "order_created", payload)
    with pytest.raises(PermanentError):
        async with UnitsOfWork(payment_engine).begin() as unit:
            await processor.on_order_created(unit, event)


async def test_the_order_moves_once_and_late_payment_events_change_nothing(
    order_engine: AsyncEngine, unique: str
) -> None:
    store = OrderStore(order_engine, utc_now, timedelta(minutes=15))
    handlers = payment_event_handlers(store)
    order = await write_order(
        store, f"u-{unique}", "k", (OrderLine("A", 1, Decimal("3.50")),), "tok_timeout"
    )
    units = UnitsOfWork(order_engine)
    async with units.begin() as unit:
        await handlers["payment_failed"](
            unit, payment_event(order.order_id, "payment_failed", "timeout")
        )
    async with units.begin() as unit:  # a late success must not revive a cancelled order
        await handlers["payment_succeeded"](
            unit, payment_event(order.order_id, "payment_succeeded")
        )
    final = await store.get(order.order_id)
    assert (final.status, final.cancel_reason) == (OrderStatus.CANCELLED, "payment_timeout")
    with pytest.raises(PermanentError):
        async with units.begin() as unit:
            await handlers["payment_failed"](
                unit, payment_event(order.order_id, "payment_failed", "bogus")
            )


async def test_a_fetch_of_payment_events_moves_each_order_once_together(
    order_engine: AsyncEngine, unique: str
) -> None:
    store = OrderStore(order_engine, utc_now, timedelta(minutes=15))
    line = (OrderLine("A", 1, Decimal("3.50")),)
    paid, declined, done = [
        await write_order(store, f"u-{unique}", key, line, "tok_visa")
        for key in ("paid", "declined", "done")
    ]
    units = UnitsOfWork(order_engine)
    async with units.begin() as unit:
        await store.apply(unit, done.order_id, "payment_succeeded")
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"

    fetch = [
        payment_event(paid.order_id, "payment_succeeded"),
        payment_event(declined.order_id, "payment_failed", "declined"),
        payment_event(paid.order_id, "payment_failed", "timeout"),  # late: changes nothing
        payment_event(done.order_id, "payment_succeeded"),  # moved before
        payment_event(f"ghost-{unique}", "payment_succeeded"),  # no such order
    ]
    fetch[0].headers["traceparent"] = trace
    async with units.begin() as unit:
        await payment_events_together(store)(unit, fetch)
    ends = {o.order_id: await store.get(o.order_id) for o in (paid, declined, done)}
    assert [(o.status, o.cancel_reason) for o in ends.values()] == [
        (OrderStatus.COMPLETED, None),
        (OrderStatus.CANCELLED, "payment_declined"),
        (OrderStatus.COMPLETED, None),
    ]
    async with order_engine.connect() as conn:
        written = (
            await conn.execute(
                select(order_outbox.c.aggregateid, order_outbox.c.type, order_outbox.c.traceparent)
                .where(order_outbox.c.aggregateid.in_(list(ends)))
                .where(order_outbox.c.type != "order_created")
            )
        ).all()
    assert sorted((r.aggregateid, r.type) for r in written) == sorted(
        [
            (paid.order_id, "order_completed"),
            (declined.order_id, "order_cancelled"),
            (done.order_id, "order_completed"),  # its own, from the earlier apply
        ]
    )
    assert {r.aggregateid: r.traceparent for r in written}[paid.order_id] == trace
