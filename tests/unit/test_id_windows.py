"""The id windows a subtree's page is read through (product/catalog/id_windows.py)."""

from __future__ import annotations

import pytest

from commerce_services.product.catalog.id_windows import (
    END,
    ID_SPACE,
    fitted_span,
    lower_bound,
    upper_bound,
    widened,
    width,
)

HALF = f"{ID_SPACE // 2:032x}"  # "8000...0"
LAST = "f" * 32


@pytest.mark.parametrize(
    ("after", "span", "upper"),
    [
        ("", 16, f"{16:032x}"),  # the first page: ids 0 .. 15 (the window is exclusive)
        ("", ID_SPACE, END),
        (HALF, 1, f"{ID_SPACE // 2 + 2:032x}"),  # just the id after the cursor
        (HALF, ID_SPACE // 2 - 2, LAST),
        (HALF, ID_SPACE // 2 - 1, END),  # reaches past the last id
        (LAST, 1, END),
    ],
)
def test_a_window_ends_span_ids_after_the_cursor_or_at_the_end(
    after: str, span: int, upper: str
) -> None:
    assert upper_bound(after, span) == upper
    assert upper == END or width(after, upper) == span


@pytest.mark.parametrize(
    ("after", "upper", "ids"),
    [
        ("", END, ID_SPACE),
        ("", f"{10:032x}", 10),
        (HALF, END, ID_SPACE // 2 - 1),
        (LAST, END, 0),
    ],
)
def test_the_width_counts_the_ids_strictly_between(after: str, upper: str, ids: int) -> None:
    assert width(after, upper) == ids
    assert lower_bound(after) < ID_SPACE


@pytest.mark.parametrize(
    ("after", "upper", "in_window", "limit", "span"),
    [
        ("", f"{1000:032x}", 100, 21, 420),  # two pages at the density seen: 2 x 21 x 10
        ("", f"{1000:032x}", 1000, 21, 42),
        ("", f"{1000:032x}", 1, 21, 42_000),
        ("", f"{10:032x}", 1000, 21, 1),  # never under one id
        ("", END, 1, 21, ID_SPACE),  # never past the whole space
        ("", END, 0, 21, ID_SPACE),  # nothing seen: the whole space
        (HALF, END, 42, 21, ID_SPACE // 2 - 1),  # a clipped window counts its own width
    ],
)
def test_the_fitted_span_holds_two_pages_at_the_density_seen(
    after: str, upper: str, in_window: int, limit: int, span: int
) -> None:
    assert fitted_span(after, upper, in_window, limit) == span


@pytest.mark.parametrize(
    ("span", "upper", "in_window", "widened_span"),
    [
        (100, f"{100:032x}", 0, 1600),  # nothing in it: sixteen times
        (100, f"{100:032x}", 20, 210),  # nearly a page: the density's fit, over twice
        (100, f"{100:032x}", 1, 4200),
        (ID_SPACE // 4, f"{ID_SPACE // 4:032x}", 0, ID_SPACE),  # never past the whole space
    ],
)
def test_a_short_window_widens_at_least_twofold(
    span: int, upper: str, in_window: int, widened_span: int
) -> None:
    new = widened(span, "", upper, in_window, 21)
    assert new == widened_span
    assert new >= min(ID_SPACE, 2 * span)
