"""Pure reservation rules: what a valid request is, in which order rows are locked, what a
replayed request must match, which of a batch of requests get their stock, and what confirm
and release do in each state, alone or several at once. No I/O here; the store applies these
rules in one transaction."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

SKU_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
MAX_QUANTITY = 10_000
MAX_LINES = 100
MAX_STOCK = 1_000_000_000


class ReservationStatus(StrEnum):
    RESERVED = "RESERVED"
    CONFIRMED = "CONFIRMED"
    RELEASED = "RELEASED"


@dataclass(frozen=True, order=True)
class LineItem:
    sku: str
    quantity: int


class InvalidRequest(ValueError):
    """The request itself is wrong; nothing was changed."""


class OutOfStock(Exception):
    def __init__(self, skus: list[str]) -> None:
        super().__init__(f"insufficient stock for {', '.join(skus)}")
        self.skus = skus


class ReservationConflict(Exception):
    """The order's reservation exists in a state that forbids this operation."""


class ReservationNotFound(Exception):
    pass


@dataclass(frozen=True)
class Reservation:
    order_id: str
    status: ReservationStatus
    items: tuple[LineItem, ...]


def validate_sku(sku: str) -> None:
    if not isinstance(sku, str) or not SKU_PATTERN.fullmatch(sku):
        raise InvalidRequest(f"invalid sku {sku!r}: 1-64 letters, digits, '.', '_' or '-'")


def validate_stock(sku: str, stock: int) -> None:
    validate_sku(sku)
    if isinstance(stock, bool) or not isinstance(stock, int) or not 0 <= stock <= MAX_STOCK:
        raise InvalidRequest(f"stock must be an integer from 0 to {MAX_STOCK}")


def normalize(order_id: str, items: Iterable[tuple[str, int]]) -> tuple[LineItem, ...]:
    """Validated items, one per SKU (quantities of repeated SKUs summed), sorted by SKU.

    The sort is the lock order: every transaction touches inventory rows in the same order,
    so two orders sharing SKUs cannot deadlock.
    """
    if not order_id or len(order_id) > 64:
        raise InvalidRequest("order_id must be 1 to 64 characters")
    merged: dict[str, int] = {}
    for sku, quantity in items:
        validate_sku(sku)
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
            raise InvalidRequest(f"quantity for {sku} must be a positive integer")
        merged[sku] = merged.get(sku, 0) + quantity
        if merged[sku] > MAX_QUANTITY:
            raise InvalidRequest(f"quantity for {sku} exceeds {MAX_QUANTITY}")
    if not merged:
        raise InvalidRequest("a reservation needs at least one item")
    if len(merged) > MAX_LINES:
        raise InvalidRequest(f"a reservation holds at most {MAX_LINES} SKUs")
    return tuple(LineItem(sku, merged[sku]) for sku in sorted(merged))


def fingerprint(items: tuple[LineItem, ...]) -> str:
    """Identifies a request's content: a replay with the same order id must carry the same."""
    canonical = json.dumps([[i.sku, i.quantity] for i in items], separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


# ---- a batch of reservations --------------------------------------------------------------


@dataclass(frozen=True)
class ReserveRequest:
    order_id: str
    items: tuple[LineItem, ...]  # normalized: one per SKU, sorted
    digest: str


def allocate(
    requests: Sequence[ReserveRequest], available: Mapping[str, int]
) -> tuple[list[ReserveRequest], dict[str, list[str]]]:
    """Which requests of a batch get their stock, in arrival order, each all-or-nothing: a
    request is granted only if every one of its SKUs still has its quantity after the requests
    before it. Returns the granted requests and, for each refused order id, its short SKUs.
    `available` is stock - reserved per SKU, read under lock; a SKU without a row has none."""
    left = dict(available)
    granted: list[ReserveRequest] = []
    refused: dict[str, list[str]] = {}
    for request in requests:
        short = [i.sku for i in request.items if left.get(i.sku, 0) < i.quantity]
        if short:
            refused[request.order_id] = short
            continue
        for item in request.items:
            left[item.sku] -= item.quantity
        granted.append(request)
    return granted, refused


def replay(
    order_id: str, status: ReservationStatus, recorded_digest: str | None, digest: str
) -> None:
    """A reserve for an order id that already has a ledger row: a replay of the same request
    is answered with the recorded reservation; anything else is refused."""
    if status == ReservationStatus.RELEASED:
        raise ReservationConflict(f"reservation {order_id} was already released")
    if recorded_digest != digest:
        raise ReservationConflict(f"reservation {order_id} exists with different items")


# ---- confirm and release ------------------------------------------------------------------


class Operation(StrEnum):
    CONFIRM = "confirm"
    RELEASE = "release"


class StockEffect(StrEnum):
    NONE = "none"
    SELL = "sell"  # stock and reserved both drop by the quantities
    GIVE_BACK = "give_back"  # reserved drops by the quantities


@dataclass(frozen=True)
class Transition:
    status: ReservationStatus  # the status after the operation
    effect: StockEffect
    changed: bool  # False: a replay, nothing to write


def transition(
    order_id: str, current: ReservationStatus | None, operation: Operation
) -> Transition:
    """What confirm or release does to a reservation in `current` (None: no ledger row).

    A release that comes first leaves a RELEASED marker, so the late reservation is refused;
    a confirm of nothing is an error; replays change nothing; a sold reservation is never
    released and a released one never sold."""
    if current is None:
        if operation == Operation.CONFIRM:
            raise ReservationNotFound(order_id)
        return Transition(ReservationStatus.RELEASED, StockEffect.NONE, True)
    target = {
        Operation.CONFIRM: ReservationStatus.CONFIRMED,
        Operation.RELEASE: ReservationStatus.RELEASED,
    }[operation]
    if current == target:
        return Transition(current, StockEffect.NONE, False)
    if current != ReservationStatus.RESERVED:
        raise ReservationConflict(
            f"the reservation was {current.value.lower()}; cannot {operation}"
        )
    effect = StockEffect.SELL if operation == Operation.CONFIRM else StockEffect.GIVE_BACK
    return Transition(target, effect, True)


@dataclass(frozen=True)
class StockChange:
    reserved: int  # units no longer reserved, negative
    stock: int  # units sold, negative


@dataclass(frozen=True)
class Plan:
    """What confirming and releasing several orders writes, each order as `transition`
    decides it, in the order the operations came."""

    stock: dict[str, StockChange]  # per SKU, the sum over the orders
    statuses: dict[str, ReservationStatus]  # ledger rows whose status changes
    markers: list[str]  # order ids released before they were reserved: new RELEASED rows


def plan(
    operations: Sequence[tuple[str, Operation]],
    current: Mapping[str, ReservationStatus],
    items: Mapping[str, tuple[LineItem, ...]],
) -> Plan:
    """The writes of `operations` on ledger rows in `current` (an order id missing there has
    none) holding `items`; raises as `transition` does for the first operation it refuses."""
    state: dict[str, ReservationStatus] = dict(current)
    reserved: dict[str, int] = {}
    sold: dict[str, int] = {}
    statuses: dict[str, ReservationStatus] = {}
    markers: list[str] = []
    for order_id, operation in operations:
        known = state.get(order_id)
        decision = transition(order_id, known, operation)
        if known is None:
            markers.append(order_id)
        elif decision.changed:
            for item in items.get(order_id, ()):
                reserved[item.sku] = reserved.get(item.sku, 0) - item.quantity
                if decision.effect == StockEffect.SELL:
                    sold[item.sku] = sold.get(item.sku, 0) - item.quantity
            statuses[order_id] = decision.status
        state[order_id] = decision.status
    return Plan(
        {sku: StockChange(reserved[sku], sold.get(sku, 0)) for sku in sorted(reserved)},
        statuses,
        markers,
    )
