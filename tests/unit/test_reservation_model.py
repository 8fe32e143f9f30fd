from __future__ import annotations

import pytest

from commerce_services.product.inventory.model import (
    MAX_QUANTITY,
    InvalidRequest,
    LineItem,
    fingerprint,
    normalize,
    validate_stock,
)


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([("B", 1), ("A", 2)], (LineItem("A", 2), LineItem("B", 1))),
        ([("A", 1), ("A", 4)], (LineItem("A", 5),)),
        ([("sku-1.x_Y", 3)], (LineItem("sku-1.x_Y", 3),)),
        (
            [("C", 1), ("A", 1), ("B", 1), ("A", 1)],
            (LineItem("A", 2), LineItem("B", 1), LineItem("C", 1)),
        ),
    ],
)
def test_items_are_merged_and_sorted_into_lock_order(
    items: list[tuple[str, int]], expected: tuple[LineItem, ...]
) -> None:
    assert normalize("order-1", items) == expected


@pytest.mark.parametrize(
    ("order_id", "items", "message"),
    [
        ("o", [], "at least one item"),
        ("", [("A", 1)], "order_id"),
        ("x" * 65, [("A", 1)], "order_id"),
        ("o", [("A", 0)], "positive integer"),
        ("o", [("A", -3)], "positive integer"),
        ("o", [("A", True)], "positive integer"),
        ("o", [("A", 1.5)], "positive integer"),
        ("o", [("", 1)], "invalid sku"),
        ("o", [("has space", 1)], "invalid sku"),
        ("o", [("-leading", 1)], "invalid sku"),
        ("o", [("A" * 65, 1)], "invalid sku"),
        ("o", [("TRAILING-NEWLINE\n", 1)], "invalid sku"),
        ("o", [("A", MAX_QUANTITY), ("A", 1)], "exceeds"),
        ("o", [(f"S{n}", 1) for n in range(101)], "at most 100"),
    ],
)
def test_bad_requests_are_refused(
    order_id: str, items: list[tuple[str, int]], message: str
) -> None:
    with pytest.raises(InvalidRequest, match=message):
        normalize(order_id, items)


@pytest.mark.parametrize("stock", [-1, True, 2.0, 1_000_000_001])
def test_bad_stock_is_refused(stock: int) -> None:
    with pytest.raises(InvalidRequest):
        validate_stock("A", stock)


def test_fingerprint_depends_on_content_not_on_request_order() -> None:
    one = fingerprint(normalize("o", [("A", 1), ("B", 2)]))
    assert one == fingerprint(normalize("o", [("B", 2), ("A", 1)]))
    assert one == fingerprint(normalize("o", [("B", 1), ("A", 1), ("B", 1)]))
    assert one != fingerprint(normalize("o", [("A", 1), ("B", 3)]))
