"""The order service's reactions to payment events: the saga's next step, guarded so that a
late or duplicate payment event never moves a finished order."""

from __future__ import annotations

from collections.abc import Sequence

from commerce_services.db.unit_of_work import UnitOfWork
from commerce_services.events.consumer import Handler, Together
from commerce_services.events.envelope import Event, PermanentError
from commerce_services.order.model import CancelReason
from commerce_services.order.store import OrderStore, SagaStep

_REASONS = {"declined": CancelReason.PAYMENT_DECLINED, "timeout": CancelReason.PAYMENT_TIMEOUT}


def payment_event_handlers(store: OrderStore) -> dict[str, Handler]:
    async def succeeded(unit: UnitOfWork, event: Event) -> None:
        await store.apply(unit, event.require("order_id"), "payment_succeeded")

    async def failed(unit: UnitOfWork, event: Event) -> None:
        await store.apply(unit, event.require("order_id"), "payment_failed", _reason(event))

    return {"payment_succeeded": succeeded, "payment_failed": failed}


def payment_events_together(store: OrderStore) -> Together:
    """The payment events of one fetch in the consumer's shared transaction, as one batch
    (OrderStore.apply_all); a malformed one fails the batch, and the events go one by one."""

    async def together(unit: UnitOfWork, events: Sequence[Event]) -> None:
        await store.apply_all(
            unit,
            [
                SagaStep(
                    event.require("order_id"),
                    event.event_type,
                    _reason(event) if event.event_type == "payment_failed" else None,
                    event.headers.get("traceparent"),
                )
                for event in events
            ],
        )

    return together


def _reason(event: Event) -> str:
    reason = _REASONS.get(str(event.payload.get("reason")))
    if reason is None:
        raise PermanentError(f"payment_failed {event.event_id} has no known reason")
    return reason.value
