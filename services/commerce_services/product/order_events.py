"""The product service's reactions to order events: a completed order turns its reservation
into a sale, a cancelled order gives the reserved stock back. Both run inside the consumer's
unit of work, next to the processed-events record; the events of one fetch together, so that
their rows are locked in one global order (each on its own locks its order, then its SKUs:
several in turn would lock SKUs out of order and deadlock with reservation batches)."""

from __future__ import annotations

from collections.abc import Sequence

from commerce_services.db.unit_of_work import UnitOfWork
from commerce_services.events.consumer import Handler, Together
from commerce_services.events.envelope import Event, PermanentError
from commerce_services.product.inventory.model import (
    Operation,
    ReservationConflict,
    ReservationNotFound,
)
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


OPERATIONS = {"order_completed": Operation.CONFIRM, "order_cancelled": Operation.RELEASE}


def order_events_together(store: InventoryStore) -> Together:
    async def together(unit: UnitOfWork, events: Sequence[Event]) -> None:
        operations = [
            (event.require("order_id", default=event.key), OPERATIONS[event.event_type])
            for event in events
        ]
        try:
            await store.apply_all(unit, operations)
        except (ReservationConflict, ReservationNotFound) as exc:
            raise PermanentError(str(exc)) from exc  # the events go one by one: it is parked

    return together
