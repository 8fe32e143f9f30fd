"""The product service's reactions to order events: a completed order turns its reservation
into a sale, a cancelled order gives the reserved stock back. Both run inside the consumer's
unit of work, next to the processed-events record."""

from __future__ import annotations

from commerce_services.db.unit_of_work import UnitOfWork
from commerce_services.events.consumer import Handler
from commerce_services.events.envelope import Event, PermanentError
from commerce_services.product.inventory.model import ReservationConflict, ReservationNotFound
from commerce_services.product.inventory.store import InventoryStore


def order_event_handlers(store: InventoryStore) -> dict[str, Handler]:
    async def completed(unit: UnitOfWork, event: Event) -> None:
        try:
            await store.confirm(unit, event.require("order_id", default=event.key))
        except (ReservationConflict, ReservationNotFound) as exc:
            # A completed order whose stock is not held is an incident, not a retry.
            raise PermanentError(str(exc)) from exc

    async def cancelled(unit: UnitOfWork, event: Event) -> None:
        try:
            await store.release(unit, event.require("order_id", default=event.key))
        except ReservationConflict as exc:
            raise PermanentError(str(exc)) from exc

    return {"order_completed": completed, "order_cancelled": cancelled}
