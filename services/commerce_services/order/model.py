"""Pure order rules: statuses, the transitions the saga may make, totals in exact decimals, and
who may act on a placement claimed under an Idempotency-Key."""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
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


class PlacementInProgress(Exception):
    """Another request with this Idempotency-Key and the same body is being placed right now;
    the client retries it shortly and gets that request's answer."""


class AttemptRolledBack(Exception):
    """An earlier attempt under this Idempotency-Key was abandoned and its reservation released;
    the order id it derives is spent, so the client must send a new key."""


class ClaimLost(Exception):
    """This request no longer owns its placement: another request took it over after the
    lease ran out, or the sweep abandoned it. It must neither write the order nor release."""


class ClaimState(StrEnum):
    """A placement claimed under an Idempotency-Key (the `placements` row):
    IN_PROGRESS  a request owns it (or owned it and gave it up for a retry to take over);
    PLACED       the order was written, in the same transaction as this state;
    ABANDONED    it will never be written; its reservation is (being) released."""

    IN_PROGRESS = "IN_PROGRESS"
    PLACED = "PLACED"
    ABANDONED = "ABANDONED"


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


def request_hash(user_id: str, items: list[tuple[str, int]], payment_token: str) -> str:
    """What an Idempotency-Key replay must match: same user, items and payment. Prices are not
    part of it: a replay after a price change is the same request and gets the same order."""
    canonical = json.dumps(
        [user_id, sorted([sku, quantity] for sku, quantity in items), payment_token],
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


ORDER_IDS = uuid.UUID("6f1d3a52-6c3e-4d5e-9a5c-0c8a1f7e2b10")


def order_id_for(user_id: str, idempotency_key: str) -> str:
    """The same request retried (same user, same key) gets the same order id, so its stock
    reservation, made before the order row exists, is found again instead of made twice."""
    return uuid.uuid5(ORDER_IDS, f"{user_id}\n{idempotency_key}").hex


@dataclass(frozen=True)
class ClaimView:
    """A placement row as a later request with the same key reads it."""

    state: ClaimState
    request_hash: str
    owner: str | None
    claimed_at: datetime


class ClaimDecision(StrEnum):
    REPLAY = "replay"  # answer with the order that was written
    TAKE_OVER = "take_over"  # its owner gave it up or died: this request continues it
    WAIT = "wait"  # its owner is still at work
    SPENT = "spent"  # abandoned: the key cannot be used again
    CONFLICT = "conflict"  # the key was used for another request


def decide_claim(
    existing: ClaimView, request_digest: str, now: datetime, lease: timedelta
) -> ClaimDecision:
    """What a request does when its Idempotency-Key is already claimed. A different body is
    always a conflict, whatever the state, so a racing request never touches what the winner
    reserved; the same body replays, waits, or continues a claim whose owner is gone."""
    if existing.request_hash != request_digest:
        return ClaimDecision.CONFLICT
    if existing.state == ClaimState.PLACED:
        return ClaimDecision.REPLAY
    if existing.state == ClaimState.ABANDONED:
        return ClaimDecision.SPENT
    if existing.owner is None or existing.claimed_at <= now - lease:
        return ClaimDecision.TAKE_OVER
    return ClaimDecision.WAIT


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


@dataclass(frozen=True)
class Transition:
    """What a saga event does to any order: the statuses it moves an order from, and the one
    it moves it to (`next_status`'s table, read per event)."""

    sources: frozenset[OrderStatus]
    target: OrderStatus


def transition(event: str) -> Transition | None:
    """The event's transition, for a store that applies it as one conditional write; None when
    it moves no order. Every event has one target, whatever the status it starts from."""
    moves = {status: next_status(status, event) for status in OrderStatus}
    targets = {target for target in moves.values() if target is not None}
    if not targets:
        return None
    (target,) = targets
    return Transition(frozenset(s for s, t in moves.items() if t is not None), target)
