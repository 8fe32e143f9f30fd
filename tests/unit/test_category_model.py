from __future__ import annotations

import pytest

from commerce_services.product.categories.model import (
    MAX_DEPTH,
    Category,
    InvalidCategory,
    MoveIntoOwnSubtree,
    TooDeep,
    ancestor_ids,
    check_move,
    child_path,
    clean_name,
    subtree_prefix,
)


def _c(path: str) -> Category:
    ids = ancestor_ids(path)
    return Category(ids[-1], f"c{ids[-1]}", ids[-2] if len(ids) > 1 else None, len(ids), path)


@pytest.mark.parametrize(
    ("parent", "child", "expected"), [(None, 7, "7"), ("1", 4, "1/4"), ("1/4", 28, "1/4/28")]
)
def test_child_path(parent: str | None, child: int, expected: str) -> None:
    assert child_path(parent, child) == expected


def test_ancestors_and_subtree_prefix() -> None:
    assert ancestor_ids("1/4/28") == [1, 4, 28]
    assert subtree_prefix("1/4") == "1/4/%"  # "1/40" does not match: the slash is part of it


@pytest.mark.parametrize(
    ("node", "parent", "height", "error"),
    [
        ("1/4", "1/4", 0, MoveIntoOwnSubtree),
        ("1/4", "1/4/28", 1, MoveIntoOwnSubtree),
        ("1/4", "1/4/28/30", 2, MoveIntoOwnSubtree),
        ("1/4", "1/40", 0, None),  # a sibling whose id starts with the same digits
        ("1/4", "2", 0, None),
        ("1/4", None, 3, None),
        ("1/4", "/".join(str(n) for n in range(2, 2 + MAX_DEPTH - 1)), 0, None),
        ("1/4", "/".join(str(n) for n in range(2, 2 + MAX_DEPTH)), 0, TooDeep),
        ("1/4", "2/3", MAX_DEPTH - 3, None),  # the deepest lands exactly on MAX_DEPTH
        ("1/4", "2/3", MAX_DEPTH - 2, TooDeep),
    ],
)
def test_check_move(
    node: str, parent: str | None, height: int, error: type[Exception] | None
) -> None:
    target = _c(parent) if parent else None
    if error is None:
        check_move(_c(node), target, height)
    else:
        with pytest.raises(error):
            check_move(_c(node), target, height)


@pytest.mark.parametrize(
    ("raw", "cleaned"), [("  Laptops ", "Laptops"), ("Home\tand  Garden", "Home and Garden")]
)
def test_names_are_normalized(raw: str, cleaned: str) -> None:
    assert clean_name(raw) == cleaned


@pytest.mark.parametrize("raw", ["", "   ", "x" * 121])
def test_bad_names_are_refused(raw: str) -> None:
    with pytest.raises(InvalidCategory):
        clean_name(raw)
