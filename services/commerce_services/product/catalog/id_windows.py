"""Windows over the product id space for paging a category's whole subtree.

A page of a subtree is the first products, in id order, listed under any of its categories.
Read as one index range per category merged, it costs every category's range on every page
(a department's 77 ranges: most of its page's time). Product ids are random (uuid4 hex), so a
subtree's products are spread evenly over the id space: a window of ids just after the cursor
that holds about two pages' worth of them is read as one short range per category, and holds
the page. The window's width comes from the spacing of the subtree's products seen on an
earlier page; a window that held less than a page (a sparse region, a first guess) is widened
and read again, up to the end of the id space, so the page is always exact: a wrong guess
costs a read, never a product.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

ID_SPACE = 16**32  # ids are 32 lowercase hex characters
END = "g"  # sorts after every id (ascii_bin): the window reaching the end of the id space
FIRST_SPAN = ID_SPACE // 64  # before anything is known of a subtree
# A window is sized to hold two pages, so it comes up short only when it holds under half its
# expected count.
PAGES_PER_WINDOW = 2

Row = TypeVar("Row")
# Reads the window (after, upper): its first `limit` products and how many it holds.
ReadWindow = Callable[[str], Awaitable[tuple[Sequence[Row], int]]]


async def first_after(
    read: ReadWindow[Row], after: str, limit: int, spacing: int | None
) -> tuple[Sequence[Row], int | None]:
    """The first `limit` products after `after`, read through windows. `spacing`: ids per
    product seen on an earlier page of the subtree (None: nothing known). Returns the page and
    the spacing this page saw (None when its last window held no product: nothing learnt)."""
    span = FIRST_SPAN if spacing is None else span_for(spacing, limit)
    while True:
        upper = upper_bound(after, span)
        rows, in_window = await read(upper)
        if len(rows) >= limit or upper == END:
            return rows, seen_spacing(after, upper, in_window)
        span = widened(span, after, upper, in_window, limit)


def lower_bound(after: str) -> int:
    """The window starts just after the cursor ("" before every id)."""
    return int(after, 16) if after else -1


def upper_bound(after: str, span: int) -> str:
    """The id the window ends before (exclusive): `span` ids after the cursor, or END."""
    upper = lower_bound(after) + 1 + span
    return END if upper >= ID_SPACE else f"{upper:032x}"


def width(after: str, upper: str) -> int:
    """How many ids the window (after, upper) covers."""
    end = ID_SPACE if upper == END else int(upper, 16)
    return end - (lower_bound(after) + 1)


def seen_spacing(after: str, upper: str, in_window: int) -> int | None:
    """Ids per product in the window (after, upper) that held `in_window` products."""
    if in_window == 0:
        return None
    return max(1, -(-width(after, upper) // in_window))  # rounded up, in integers: exact


def span_for(spacing: int, limit: int) -> int:
    """A window expected to hold PAGES_PER_WINDOW pages at `spacing` ids per product."""
    return min(ID_SPACE, PAGES_PER_WINDOW * limit * spacing)


def widened(span: int, after: str, upper: str, in_window: int, limit: int) -> int:
    """The next span after a window that held fewer than `limit` products: at least twice as
    wide, sixteen times when it held none."""
    spacing = seen_spacing(after, upper, in_window)
    if spacing is None:
        return min(ID_SPACE, span * 16)
    return max(min(ID_SPACE, span * 2), span_for(spacing, limit))
