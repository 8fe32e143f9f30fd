"""Pure reservation rules: what a valid request is, in which order rows are locked, what a
replayed request must match. No I/O here; the store applies these rules in one transaction."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
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
