"""The committed copy of a revision reads back as MongoDB returns the revision."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from commerce_services.product.catalog.committed_documents import decode, encode

REVISION = {
    "_id": "p1:3",
    "product_id": "p1",
    "version": 3,
    "deleted": False,
    "title": "Grüne Jacke",
    "description": "",
    "brand": None,
    "attributes": {"size": "M", "weight_g": 420, "waterproof": True, "ratio": 0.5},
    "variants": [{"sku": "J-1", "price": {"amount_minor": 1999, "currency": "EUR"}}],
    "images": [],
    "category_ids": [4, 9],
    "primary_category_id": 4,
}


@pytest.mark.parametrize(
    ("given", "read"),
    [
        (datetime(2026, 1, 2, 3, 4, 5, 678000), datetime(2026, 1, 2, 3, 4, 5, 678000)),
        # BSON keeps milliseconds and no zone: the copy does what a round trip through it does.
        (datetime(2026, 1, 2, 3, 4, 5, 678999), datetime(2026, 1, 2, 3, 4, 5, 678000)),
        (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), datetime(2026, 1, 2, 3, 4, 5)),
        (
            datetime(2026, 1, 2, 5, 4, 5, tzinfo=timezone(timedelta(hours=2))),
            datetime(2026, 1, 2, 3, 4, 5),
        ),
    ],
)
def test_a_copy_reads_back_as_the_stored_revision(given: datetime, read: datetime) -> None:
    copy = decode(encode({**REVISION, "created_at": given, "updated_at": given}))
    assert copy == {**REVISION, "created_at": read, "updated_at": read}
    assert copy["created_at"].tzinfo is None
