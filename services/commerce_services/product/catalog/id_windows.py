"""Windows over the product id space for paging a category's whole subtree (pure).

A page of a subtree is the first products, in id order, listed under any of its categories.
Read as one index range per category merged, it costs every category's range on every page
(a department's 77 ranges: most of its page's time). Product ids are random (uuid4 hex), so a
subtree's products are spread evenly over the id space: a window of ids just after the cursor
that holds about two pages' worth of them is read as one short range per category, and holds
the page. The window's width comes from the density seen on the subtree's last page; a window
that held less than a page (a sparse region, a first guess) is widened and read again, up to
the end of the id space, so the page is always exact: a wrong guess costs a read, never a
product.
"""

from __future__ import annotations

ID_SPACE = 16**32  # ids are 32 lowercase hex characters
END = "g"  # sorts after every id (ascii_bin): the window reaching the end of the id space
FIRST_SPAN = ID_SPACE // 64  # before anything is known of a subtree
PAGES_PER_WINDOW = 2  # a page is short only when the window holds under half its mean


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


def fitted_span(after: str, upper: str, in_window: int, limit: int) -> int:
    """The span a window needs to hold PAGES_PER_WINDOW pages at the density seen in (after,
    upper), where `in_window` products were."""
    if in_window == 0:
        return ID_SPACE
    wanted = -(-PAGES_PER_WINDOW * limit * width(after, upper) // in_window)  # exact: ints
    return max(1, min(ID_SPACE, wanted))


def widened(span: int, after: str, upper: str, in_window: int, limit: int) -> int:
    """The next span after a window that held fewer than `limit` products: at least twice as
    wide, sixteen times when it held none."""
    if in_window == 0:
        return min(ID_SPACE, span * 16)
    return max(min(ID_SPACE, span * 2), fitted_span(after, upper, in_window, limit))
