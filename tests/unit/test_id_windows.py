"""The id windows a subtree's page is read through (product/catalog/id_windows.py): the
arithmetic in tables, then the reading loop against a fake listing."""

from __future__ import annotations

import asyncio
import bisect
import random
from collections.abc import Sequence

import pytest

from commerce_services.product.catalog.id_windows import (
    END,
    ID_SPACE,
    ReadWindow,
    first_after,
    seen_spacing,
    span_for,
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


@pytest.mark.parametrize(
    ("after", "upper", "in_window", "spacing"),
    [
        ("", f"{1000:032x}", 100, 10),
        ("", f"{1000:032x}", 300, 4),  # rounded up
        ("", f"{10:032x}", 10, 1),
        (HALF, END, 2, (ID_SPACE // 2 - 1 + 1) // 2),  # a clipped window counts its own width
        ("", END, 0, None),  # nothing seen, nothing learnt
    ],
)
def test_the_spacing_seen_is_ids_per_product(
    after: str, upper: str, in_window: int, spacing: int | None
) -> None:
    assert seen_spacing(after, upper, in_window) == spacing


@pytest.mark.parametrize(
    ("spacing", "limit", "span"),
    [(10, 21, 420), (1, 21, 42), (ID_SPACE, 21, ID_SPACE)],  # never past the whole space
)
def test_a_window_is_sized_for_two_pages(spacing: int, limit: int, span: int) -> None:
    assert span_for(spacing, limit) == span


@pytest.mark.parametrize(
    ("span", "in_window", "widened_span"),
    [
        (100, 0, 1600),  # nothing in it: sixteen times
        (100, 20, 210),  # nearly a page: two pages at the spacing seen (5), over twice
        (100, 1, 4200),
        (ID_SPACE // 4, 0, ID_SPACE),  # never past the whole space
    ],
)
def test_a_short_window_widens_at_least_twofold(
    span: int, in_window: int, widened_span: int
) -> None:
    new = widened(span, "", upper_bound("", span), in_window, 21)
    assert new == widened_span
    assert new >= min(ID_SPACE, 2 * span)


class Listing:
    """A subtree's product ids, read as the window query reads them; counts the reads."""

    def __init__(self, ids: list[str]) -> None:
        self.ids = sorted(ids)
        self.reads = 0
        self.largest_window = 0  # products in the largest window read

    def reader(self, after: str, limit: int) -> ReadWindow[str]:
        async def read(upper: str) -> tuple[Sequence[str], int]:
            self.reads += 1
            first = bisect.bisect_right(self.ids, after)
            end = bisect.bisect_left(self.ids, upper)
            self.largest_window = max(self.largest_window, end - first)
            return self.ids[first : min(end, first + limit)], end - first

        return read

    def pages(self, limit: int, spacing: int | None) -> tuple[list[list[str]], int | None]:
        """Every page in turn, with the spacing learnt along the way."""
        pages: list[list[str]] = []
        after = ""
        while True:
            page, seen = asyncio.run(first_after(self.reader(after, limit), after, limit, spacing))
            spacing = spacing if seen is None else seen
            pages.append(list(page))
            if len(page) < limit:
                return pages, spacing
            after = page[-1]


def _random_ids(rng: random.Random, count: int, prefix: str = "") -> list[str]:
    return [prefix + f"{rng.getrandbits(128):032x}"[len(prefix) :] for _ in range(count)]


@pytest.mark.parametrize("limit", [1, 2, 21, 101])
@pytest.mark.parametrize(
    "ids",
    [
        [],
        _random_ids(random.Random(1), 1),
        _random_ids(random.Random(2), 5),
        _random_ids(random.Random(3), 1000),
        # Bunched at the start, the middle and the end: windows overshoot, come up empty, widen.
        _random_ids(random.Random(4), 40, "0000")
        + _random_ids(random.Random(5), 3, "8000")
        + _random_ids(random.Random(6), 30, "ffff"),
    ],
)
def test_every_page_holds_exactly_the_next_products(ids: list[str], limit: int) -> None:
    listing = Listing(ids)
    for spacing in (None, 1, ID_SPACE):  # nothing known, far too dense, far too sparse
        pages, _ = listing.pages(limit, spacing)
        assert [i for page in pages for i in page] == sorted(ids)
        assert all(len(page) == limit for page in pages[:-1])
        assert len(pages[-1]) < limit


def test_with_the_spacing_learnt_a_page_of_an_even_subtree_is_one_read() -> None:
    listing = Listing(_random_ids(random.Random(7), 20_000))
    _, learnt = listing.pages(21, None)
    assert learnt is not None
    listing.reads = 0
    pages, _ = listing.pages(21, learnt)
    assert len(pages) == 20_000 // 21 + 1
    assert listing.reads <= len(pages) * 1.05  # a short window is rare at two pages a window


def test_an_empty_window_teaches_nothing() -> None:
    """A page past the last product (a cursor at the end, a stale one) sees no product: the
    spacing learnt before stays, so the next first page does not read the whole subtree."""
    listing = Listing(_random_ids(random.Random(8), 1000))
    _, learnt = listing.pages(21, None)
    page, seen = asyncio.run(first_after(listing.reader(LAST, 21), LAST, 21, learnt))
    assert (list(page), seen) == ([], None)
    listing.largest_window = 0
    first, _ = asyncio.run(first_after(listing.reader("", 21), "", 21, learnt))
    assert list(first) == listing.ids[:21]
    assert listing.largest_window < 200  # about two pages, not the thousand
