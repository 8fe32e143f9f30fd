"""Stock and reservations: one atomic conditional UPDATE per SKU makes overselling impossible."""
