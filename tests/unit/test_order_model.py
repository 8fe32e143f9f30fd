from __future__ import annotations

from decimal import Decimal

import pytest

from commerce_services.order.model import (
    OrderLine,
    OrderStatus,
    next_status,
    order_id_for,
    request_hash,
    total,
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


def test_totals_are_exact() -> None:
    lines = (OrderLine("A", 3, Decimal("0.10")), OrderLine("B", 1, Decimal("0.20")))
    assert total(lines) == Decimal("0.50")


def test_order_ids_follow_user_and_key() -> None:
    assert order_id_for("u1", "k") == order_id_for("u1", "k")
    assert order_id_for("u1", "k") != order_id_for("u2", "k")
    assert order_id_for("u1", "k") != order_id_for("u1", "k2")
    assert len(order_id_for("u1", "k")) == 32


def test_request_hash_ignores_line_order_but_not_content() -> None:
    a, b = OrderLine("A", 1, Decimal("1.00")), OrderLine("B", 2, Decimal("2.00"))
    assert request_hash("u", (a, b), "tok") == request_hash("u", (b, a), "tok")
    assert request_hash("u", (a, b), "tok") != request_hash("u", (a, b), "tok_other")
    assert request_hash("u", (a,), "tok") != request_hash("u", (a, b), "tok")
