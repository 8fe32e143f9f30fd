"""Charging an order when `order_created` arrives: one payment per order, ever.

Runs inside the consumer's transaction (next to the processed-events record): the order's
payment row is checked under lock, the gateway is called with the order id as idempotency key
(a redelivery after a crash gets the same answer, never a second charge), timeouts are retried
with backoff, and the payment row and its `payment_succeeded`/`payment_failed` event are
written together.

`order_cancelled` settles money the saga must not keep: a SUCCEEDED payment (the order was
cancelled at its deadline while the charge was on its way) is refunded, idempotency key
`refund-<order id>`, and ends REFUNDED with `payment_refunded`; an order without a payment gets
a VOIDED row, so an `order_created` replayed later (from a DLQ or failed_events) charges nothing.
Both arrive on the order's key, so Kafka keeps them in the order they were written.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import insert, select, update
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from commerce_services.db.locking_reads import locked_by_key
from commerce_services.db.unit_of_work import UnitOfWork
from commerce_services.events.consumer import Handler
from commerce_services.events.envelope import Event, PermanentError
from commerce_services.events.outbox import Outbox, OutboxEvent, current_traceparent
from commerce_services.payment.gateway import Charge, GatewayTimeout, PaymentGateway
from commerce_services.payment.tables import outbox, payments

AGGREGATE = "payment"
# ISO 4217's code for "no currency involved": a void moves no money.
NO_CURRENCY = "XXX"

# The statements of every charge, built once (values passed apart): SQLAlchemy builds nothing
# per event. The locking read takes the orders' payment rows, or the gaps where they would go:
# of two consumers charging one order at once, the second waits for the first's row, or
# deadlocks on it and is retried; then it finds the order settled. The charge itself is keyed
# by the order id at the gateway, so a retried one is the same charge.
_SETTLED = locked_by_key(payments.c.order_id, payments.c.order_id)
_RECORD = insert(payments)


def _order_fields(event: Event) -> tuple[str, str | None, Decimal, str, str]:
    payload = event.payload
    # The buyer, whom the payment is shown to; an event without one is shown to staff only.
    buyer = payload.get("user_id")
    user_id = buyer if isinstance(buyer, str) else None
    try:
        order_id = str(payload["order_id"])
        amount = Decimal(str(payload["total"]))
        currency, token = str(payload["currency"]), str(payload["payment_token"])
    except (KeyError, InvalidOperation) as exc:
        raise PermanentError(f"order_created {event.event_id} is incomplete: {exc!r}") from exc
    if amount < 0 or len(currency) != 3:
        raise PermanentError(f"order_created {event.event_id} has an invalid amount or currency")
    return order_id, user_id, amount, currency, token


class PaymentProcessor:
    def __init__(
        self,
        gateway: PaymentGateway,
        clock: Callable[[], datetime],
        attempts: int = 3,
        backoff_s: float = 0.2,
    ) -> None:
        self._gateway = gateway
        self._clock = clock
        self._attempts = attempts
        self._backoff_s = backoff_s
        self._outbox = Outbox(outbox)

    def handlers(self) -> dict[str, Handler]:
        return {"order_created": self.on_order_created, "order_cancelled": self.on_order_cancelled}

    async def on_order_created(self, unit: UnitOfWork, event: Event) -> None:
        await self._charge_all(unit, [(event, current_traceparent())])

    async def together(self, unit: UnitOfWork, events: Sequence[Event]) -> None:
        """The events of one fetch in one transaction (the consumer's `together`), in their
        order: each run of `order_created` charged together (one locking read, one INSERT of
        the payments, one of their events: three statements for the run instead of three per
        order), each `order_cancelled` as on its own. Each payment event continues the trace
        of the order event it answers."""
        run: list[tuple[Event, str | None]] = []
        for event in events:
            if event.event_type == "order_created":
                run.append((event, event.headers.get("traceparent")))
                continue
            if run:
                await self._charge_all(unit, run)
                run = []
            await self.on_order_cancelled(unit, event)
        if run:
            await self._charge_all(unit, run)

    async def _charge_all(
        self, unit: UnitOfWork, events: Sequence[tuple[Event, str | None]]
    ) -> None:
        """Charges each order not charged (or refused, or voided) before, the gateway called
        in turn, and writes the payments and their events; an order announced twice is
        charged once."""
        conn = unit.conn
        orders = [(_order_fields(event), trace) for event, trace in events]
        settled = set(await conn.scalars(_SETTLED, {"keys": sorted({o[0] for o, _ in orders})}))
        rows: list[dict[str, object]] = []
        written: list[tuple[OutboxEvent, str | None]] = []
        for (order_id, user_id, amount, currency, token), trace in orders:
            if order_id in settled:
                continue  # charged (or refused, or voided) before: never twice
            settled.add(order_id)
            charge: Charge | None
            try:
                charge = await self._charge(order_id, amount, currency, token)
            except GatewayTimeout:
                charge = None
            payment_id = uuid.uuid4().hex
            if charge is not None and charge.approved:
                status, reason, event_type = "SUCCEEDED", None, "payment_succeeded"
            else:
                status = "FAILED"
                reason = "timeout" if charge is None else "declined"
                event_type = "payment_failed"
            rows.append(
                {
                    "payment_id": payment_id,
                    "order_id": order_id,
                    "user_id": user_id,
                    "amount": amount,
                    "currency": currency,
                    "status": status,
                    "reason": reason,
                    "gateway_reference": charge.reference if charge else None,
                }
            )
            payload: dict[str, object] = {
                "order_id": order_id,
                "payment_id": payment_id,
                "amount": amount,
                "currency": currency,
            }
            if reason is not None:
                payload["reason"] = reason
            written.append((OutboxEvent(AGGREGATE, order_id, event_type, payload), trace))
        if not rows:
            return
        now = self._clock()
        await conn.execute(_RECORD, [{**row, "created_at": now} for row in rows])
        await self._outbox.append_all(conn, written, now)

    async def on_order_cancelled(self, unit: UnitOfWork, event: Event) -> None:
        conn = unit.conn
        order_id = event.require("order_id")
        payment = (
            await conn.execute(
                select(payments).where(payments.c.order_id == order_id).with_for_update()
            )
        ).one_or_none()
        now = self._clock()
        if payment is None:
            await conn.execute(
                insert(payments).values(
                    payment_id=uuid.uuid4().hex,
                    order_id=order_id,
                    amount=Decimal("0.00"),
                    currency=NO_CURRENCY,
                    status="VOIDED",
                    reason="order_cancelled",
                    created_at=now,
                    updated_at=now,
                )
            )
            return
        if payment.status != "SUCCEEDED":
            return  # nothing was taken, or it was given back already
        refund = await self._gateway.refund(
            f"refund-{order_id}", payment.gateway_reference, payment.amount, payment.currency
        )
        await conn.execute(
            update(payments)
            .where(payments.c.payment_id == payment.payment_id)
            .values(status="REFUNDED", refund_reference=refund.reference, updated_at=now)
        )
        payload: dict[str, object] = {
            "order_id": order_id,
            "payment_id": payment.payment_id,
            "amount": payment.amount,
            "currency": payment.currency,
            "reason": str(event.payload.get("reason", "order_cancelled")),
        }
        await self._outbox.append(
            conn, OutboxEvent(AGGREGATE, order_id, "payment_refunded", payload), now
        )

    async def _charge(self, order_id: str, amount: Decimal, currency: str, token: str) -> Charge:
        async for attempt in AsyncRetrying(
            retry=retry_if_exception_type(GatewayTimeout),
            stop=stop_after_attempt(self._attempts),
            wait=wait_exponential(multiplier=self._backoff_s),
            reraise=True,
        ):
            with attempt:
                return await self._gateway.charge(order_id, amount, currency, token)
        raise AssertionError("unreachable: tenacity reraises the last error")
