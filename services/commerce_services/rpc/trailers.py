"""Trailing metadata keys that are part of the gRPC contract between services, next to the
generated stubs: what both sides of a call must spell the same way."""

from __future__ import annotations

# On a FAILED_PRECONDITION from ReserveStock: the short SKUs, comma-separated.
OUT_OF_STOCK_SKUS = "commerce-out-of-stock"
# On a FAILED_PRECONDITION from ReserveStock: the SKUs no live product sells in the order's
# currency, comma-separated.
UNPRICED_SKUS = "commerce-unpriced"
