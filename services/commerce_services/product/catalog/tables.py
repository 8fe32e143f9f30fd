"""The catalog's category mapping in the product service's database (the documents themselves
live in MongoDB)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, MetaData, String, Table
from sqlalchemy.dialects.mysql import DATETIME

metadata = MetaData()

# One row per product whose mapping was ever written: the product version its category rows
# reflect. Kept after a delete (deleted = true), so a late write of an older version cannot
# bring the product back into listings.
product_mappings = Table(
    "product_mappings",
    metadata,
    Column("product_id", String(32), primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("updated_at", DATETIME(fsp=6), nullable=False),
)

product_categories = Table(
    "product_categories",
    metadata,
    Column("product_id", String(32), primary_key=True),
    Column("category_id", BigInteger, primary_key=True),
    Column("is_primary", Boolean, nullable=False),
)
