from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from commerce_services.order.model import (
    ClaimDecision,
    ClaimState,
    ClaimView,
    OrderLine,
    OrderStatus,
    decide_claim,
    next_status,
    order_id_for,
    request_hash,
    total,
    transition,
)

P, C, X = OrderStatus.PENDING, OrderStatus.COMPLETED, OrderStatus.CANCELLED


@pytest.mark.parametrize(
    ("current", "event", "expected"),
    [
        (P, "payment_succeeded", C),
        (P, "payment_failed", X),
        (P, "deadline_passed", X),
        (P, "something_else", None),
        (C, "payment_succeeded", None),  # duplicate
        (C, "payment_failed", None),  # late: a paid order is never cancelled by it
        (C, "deadline_passed", None),
        (X, "payment_succeeded", None),  # late success after a timeout cancelled the order
        (X, "payment_failed", None),
    ],
)
def test_transitions(current: OrderStatus, event: str, expected: OrderStatus | None) -> None:
    assert next_status(current, event) == expected


@pytest.mark.parametrize(
    ("event", "sources", "target"),
    [
        ("payment_succeeded", frozenset({P}), C),
        ("payment_failed", frozenset({P}), X),
        ("deadline_passed", frozenset({P}), X),
    ],
)
def test_each_event_is_one_transition_read_from_the_table(
    event: str, sources: frozenset[OrderStatus], target: OrderStatus
) -> None:
    change = transition(event)
    assert change is not None
    assert (change.sources, change.target) == (sources, target)
    for status in OrderStatus:
        assert next_status(status, event) == (target if status in sources else None)


def test_an_event_that_moves_no_order_has_no_transition() -> None:
    assert transition("something_else") is None


def test_totals_are_exact() -> None:
    lines = (OrderLine("A", 3, Decimal("0.10")), OrderLine("B", 1, Decimal("0.20")))
    assert total(lines) == Decimal("0.50")


def test_order_ids_follow_user_and_key() -> None:
    assert order_id_for("u1", "k") == order_id_for("u1", "k")
    assert order_id_for("u1", "k") != order_id_for("u2", "k")
    assert order_id_for("u1", "k") != order_id_for("u1", "k2")
    assert len(order_id_for("u1", "k")) == 32


def test_request_hash_ignores_line_order_but_not_content() -> None:
    a, b = ("A", 1), ("B", 2)
    assert request_hash("u", [a, b], "tok") == request_hash("u", [b, a], "tok")
    assert request_hash("u", [a, b], "tok") != request_hash("u", [a, b], "tok_other")
    assert request_hash("u", [a], "tok") != request_hash("u", [a, b], "tok")
    assert request_hash("u", [a], "tok") != request_hash("u2", [a], "tok")
    assert request_hash("u", [("A", 1)], "tok") != request_hash("u", [("A", 2)], "tok")


NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
LEASE = timedelta(seconds=30)
FRESH, STALE = NOW - timedelta(seconds=5), NOW - timedelta(seconds=31)
IN_PROGRESS, PLACED, ABANDONED = ClaimState.IN_PROGRESS, ClaimState.PLACED, ClaimState.ABANDONED
D = ClaimDecision


@pytest.mark.parametrize(
    ("state", "same_body", "owner", "claimed_at", "expected"),
    [
        (PLACED, True, None, FRESH, D.REPLAY),
        (PLACED, False, None, FRESH, D.CONFLICT),
        (ABANDONED, True, None, FRESH, D.SPENT),
        (ABANDONED, False, None, FRESH, D.CONFLICT),
        (IN_PROGRESS, True, "a", FRESH, D.WAIT),  # its owner is at work
        (IN_PROGRESS, False, "a", FRESH, D.CONFLICT),  # never touches the winner's stock
        (IN_PROGRESS, True, "a", STALE, D.TAKE_OVER),  # its owner died
        (IN_PROGRESS, False, "a", STALE, D.CONFLICT),
        (IN_PROGRESS, True, None, FRESH, D.TAKE_OVER),  # given up for a retry
        (IN_PROGRESS, False, None, FRESH, D.CONFLICT),
    ],
)
def test_what_a_request_does_with_a_claimed_key(
    state: ClaimState, same_body: bool, owner: str | None, claimed_at: datetime, expected: D
) -> None:
    seen = ClaimView(state, "h1", owner, claimed_at)
    assert decide_claim(seen, "h1" if same_body else "h2", NOW, LEASE) == expected
