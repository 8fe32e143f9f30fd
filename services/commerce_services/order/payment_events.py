"""The order service's reactions to payment events: the saga's next step, guarded so that a
late or duplicate payment event never moves a finished order."""

from __future__ import annotations

from commerce_services.db.unit_of_work import UnitOfWork
from commerce_services.events.consumer import Handler
from commerce_services.events.envelope import Event, PermanentError
from commerce_services.order.model import CancelReason
from commerce_services.order.store import OrderStore

_REASONS = {"declined": CancelReason.PAYMENT_DECLINED, "timeout": CancelReason.PAYMENT_TIMEOUT}


def payment_event_handlers(store: OrderStore) -> dict[str, Handler]:
    async def succeeded(unit: UnitOfWork, event: Event) -> None:
        await store.apply(unit, event.require("order_id"), "payment_succeeded")

    async def failed(unit: UnitOfWork, event: Event) -> None:
        reason = _REASONS.get(str(event.payload.get("reason")))
        if reason is None:
            raise PermanentError(f"payment_failed {event.event_id} has no known reason")
        await store.apply(unit, event.require("order_id"), "payment_failed", reason.value)

    return {"payment_succeeded": succeeded, "payment_failed": failed}
