"""Pure order rules: statuses, the transitions the saga may make, totals in exact decimals."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


class CancelReason(StrEnum):
    PAYMENT_DECLINED = "payment_declined"
    PAYMENT_TIMEOUT = "payment_timeout"
    RESERVATION_EXPIRED = "reservation_expired"


TERMINAL = frozenset({OrderStatus.COMPLETED, OrderStatus.CANCELLED})


class IdempotencyConflict(Exception):
    """The Idempotency-Key was used before with a different request."""


class OrderNotFound(LookupError):
    pass


@dataclass(frozen=True)
class OrderLine:
    sku: str
    quantity: int
    unit_price: Decimal

    @property
    def amount(self) -> Decimal:
        return self.unit_price * self.quantity


def total(lines: tuple[OrderLine, ...]) -> Decimal:
    return sum((line.amount for line in lines), Decimal("0"))


def request_hash(user_id: str, lines: tuple[OrderLine, ...], payment_token: str) -> str:
    """What an Idempotency-Key replay must match: same user, items and payment."""
    canonical = json.dumps(
        [
            user_id,
            sorted([line.sku, line.quantity, str(line.unit_price)] for line in lines),
            payment_token,
        ],
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


ORDER_IDS = uuid.UUID("6f1d3a52-6c3e-4d5e-9a5c-0c8a1f7e2b10")


def order_id_for(user_id: str, idempotency_key: str) -> str:
    """The same request retried (same user, same key) gets the same order id, so its stock
    reservation, made before the order row exists, is found again instead of made twice."""
    return uuid.uuid5(ORDER_IDS, f"{user_id}\n{idempotency_key}").hex


def next_status(current: OrderStatus, event: str) -> OrderStatus | None:
    """The status after a saga event, or None when the event must not move the order: a late
    or duplicate event never changes a terminal order."""
    if current in TERMINAL:
        return None
    return {
        "payment_succeeded": OrderStatus.COMPLETED,
        "payment_failed": OrderStatus.CANCELLED,
        "deadline_passed": OrderStatus.CANCELLED,
    }.get(event)
