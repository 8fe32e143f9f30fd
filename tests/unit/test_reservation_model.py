from __future__ import annotations

import pytest

from commerce_services.product.inventory.model import (
    MAX_QUANTITY,
    InvalidRequest,
    LineItem,
    Operation,
    ReservationConflict,
    ReservationNotFound,
    ReservationStatus,
    ReserveRequest,
    StockChange,
    StockEffect,
    allocate,
    fingerprint,
    normalize,
    plan,
    replay,
    transition,
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


def _request(order_id: str, *items: tuple[str, int]) -> ReserveRequest:
    normalized = normalize(order_id, list(items))
    return ReserveRequest(order_id, normalized, fingerprint(normalized))


@pytest.mark.parametrize(
    ("available", "requests", "granted", "refused"),
    [
        # first come, first served, down to the last unit
        (
            {"A": 2},
            [("o1", [("A", 1)]), ("o2", [("A", 1)]), ("o3", [("A", 1)])],
            ["o1", "o2"],
            {"o3": ["A"]},
        ),
        # a request that cannot be met whole takes nothing; a later, smaller one still can
        ({"A": 2}, [("o1", [("A", 3)]), ("o2", [("A", 2)])], ["o2"], {"o1": ["A"]}),
        # all-or-nothing across SKUs: B short refuses the whole order and leaves A for others
        (
            {"A": 1, "B": 0},
            [("o1", [("A", 1), ("B", 1)]), ("o2", [("A", 1)])],
            ["o2"],
            {"o1": ["B"]},
        ),
        # every short SKU is named; a SKU without a row has nothing
        ({"A": 0}, [("o1", [("A", 1), ("Z", 1)])], [], {"o1": ["A", "Z"]}),
        ({"A": 5, "B": 5}, [("o1", [("A", 2), ("B", 5)]), ("o2", [("A", 3)])], ["o1", "o2"], {}),
    ],
)
def test_a_batch_is_allocated_in_arrival_order_each_all_or_nothing(
    available: dict[str, int],
    requests: list[tuple[str, list[tuple[str, int]]]],
    granted: list[str],
    refused: dict[str, list[str]],
) -> None:
    got, short = allocate([_request(o, *items) for o, items in requests], available)
    assert [r.order_id for r in got] == granted
    assert short == refused


R, C, X = ReservationStatus.RESERVED, ReservationStatus.CONFIRMED, ReservationStatus.RELEASED
SELL, BACK, NONE = StockEffect.SELL, StockEffect.GIVE_BACK, StockEffect.NONE


@pytest.mark.parametrize(
    ("current", "operation", "expected"),
    [
        (R, Operation.CONFIRM, (C, SELL, True)),
        (R, Operation.RELEASE, (X, BACK, True)),
        (C, Operation.CONFIRM, (C, NONE, False)),  # a replay
        (X, Operation.RELEASE, (X, NONE, False)),  # a replay
        (None, Operation.RELEASE, (X, NONE, True)),  # before its reservation: a marker
        (C, Operation.RELEASE, "confirmed; cannot release"),  # a sale is never undone
        (X, Operation.CONFIRM, "released; cannot confirm"),  # released stock is never sold
        (None, Operation.CONFIRM, ReservationNotFound),
    ],
)
def test_confirm_and_release_in_every_state(
    current: ReservationStatus | None,
    operation: Operation,
    expected: tuple[ReservationStatus, StockEffect, bool] | str | type[Exception],
) -> None:
    if isinstance(expected, tuple):
        decided = transition("o", current, operation)
        assert (decided.status, decided.effect, decided.changed) == expected
    elif isinstance(expected, str):
        with pytest.raises(ReservationConflict, match=expected):
            transition("o", current, operation)
    else:
        with pytest.raises(expected):
            transition("o", current, operation)


@pytest.mark.parametrize(
    ("status", "same_items", "error"),
    [(R, True, None), (C, True, None), (X, True, "already released"), (R, False, "different")],
)
def test_a_replayed_reserve(status: ReservationStatus, same_items: bool, error: str | None) -> None:
    if error is None:
        replay("o", status, "h", "h")
    else:
        with pytest.raises(ReservationConflict, match=error):
            replay("o", status, "h", "h" if same_items else "other")


# ---- several confirms and releases at once -------------------------------------------------

CONFIRM, RELEASE = Operation.CONFIRM, Operation.RELEASE
RES, CONF, REL = ReservationStatus.RESERVED, ReservationStatus.CONFIRMED, ReservationStatus.RELEASED
HELD = {
    "o1": (LineItem("A", 2), LineItem("B", 1)),
    "o2": (LineItem("A", 3),),
    "o3": (LineItem("B", 4),),
}


@pytest.mark.parametrize(
    ("operations", "current", "stock", "statuses", "markers"),
    [
        (  # two sales and a give-back summed per SKU; sold units leave stock too
            [("o1", CONFIRM), ("o2", CONFIRM), ("o3", RELEASE)],
            {"o1": RES, "o2": RES, "o3": RES},
            {"A": StockChange(-5, -5), "B": StockChange(-5, -1)},
            {"o1": CONF, "o2": CONF, "o3": REL},
            [],
        ),
        (  # replays change nothing
            [("o1", CONFIRM), ("o1", CONFIRM), ("o3", RELEASE)],
            {"o1": CONF, "o3": RES},
            {"B": StockChange(-4, 0)},
            {"o3": REL},
            [],
        ),
        (  # a release before its reservation leaves a marker; a second release is a replay
            [("o9", RELEASE), ("o9", RELEASE)],
            {},
            {},
            {},
            ["o9"],
        ),
        (  # the same order twice in one fetch: confirmed once
            [("o2", CONFIRM), ("o2", CONFIRM)],
            {"o2": RES},
            {"A": StockChange(-3, -3)},
            {"o2": CONF},
            [],
        ),
    ],
)
def test_several_operations_plan_what_each_transition_decides(
    operations: list[tuple[str, Operation]],
    current: dict[str, ReservationStatus],
    stock: dict[str, StockChange],
    statuses: dict[str, ReservationStatus],
    markers: list[str],
) -> None:
    planned = plan(operations, current, HELD)
    assert (planned.stock, planned.statuses, planned.markers) == (stock, statuses, markers)
    assert list(planned.stock) == sorted(planned.stock)  # the lock order


@pytest.mark.parametrize(
    ("operations", "current", "error"),
    [
        ([("o1", CONFIRM), ("ghost", CONFIRM)], {"o1": RES}, ReservationNotFound),
        (
            [("o1", RELEASE), ("o1", CONFIRM)],
            {"o1": RES},
            ReservationConflict,
        ),  # released, then sold
        ([("o9", RELEASE), ("o9", CONFIRM)], {}, ReservationConflict),  # sold after a marker
    ],
)
def test_several_operations_raise_as_the_first_refused_would(
    operations: list[tuple[str, Operation]],
    current: dict[str, ReservationStatus],
    error: type[Exception],
) -> None:
    with pytest.raises(error):
        plan(operations, current, HELD)
