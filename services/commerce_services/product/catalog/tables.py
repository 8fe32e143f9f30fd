"""The catalog's tables in the product service's MariaDB database (the documents themselves live
in MongoDB): what each product's latest committed version is, where it is listed, what its SKUs
cost, which SKUs are claimed, which writes may have stopped half-way, which old revisions may
go, and the outbox its change events leave by."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, MetaData, String, Table
from sqlalchemy.dialects.mysql import CHAR, DATETIME, MEDIUMTEXT

from commerce_services.events.outbox import outbox_table

metadata = MetaData()


ProductId = CHAR(32, charset="ascii", collation="ascii_bin")
Sku = String(64, collation="ascii_bin")


# One row per product whose version was ever committed: the head every read starts from. Kept
# after a delete (deleted = true), so a late commit of an older version cannot bring the product
# back. `title` is the committed version's (NULL once deleted): the degraded search and its
# suggestions find products through it. `document` is the committed revision's copy
# (committed_documents.py; NULL once deleted, and for products committed before migration 0007
# until the catalog upkeep completes them).
product_mappings = Table(
    "product_mappings",
    metadata,
    Column("product_id", ProductId, primary_key=True),
    Column("version", BigInteger, nullable=False),
    Column("deleted", Boolean, nullable=False),
    Column("updated_at", DATETIME(fsp=6), nullable=False),
    Column("title", String(200), nullable=True),
    Column("document", MEDIUMTEXT, nullable=True),
)

product_categories = Table(
    "product_categories",
    metadata,
    Column("product_id", ProductId, primary_key=True),
    Column("category_id", BigInteger, primary_key=True),
    Column("is_primary", Boolean, nullable=False),
)

# Which product a SKU belongs to, claimed before its revision is stored (see sku_claims.py).
sku_claims = Table(
    "sku_claims",
    metadata,
    Column("sku", Sku, primary_key=True),
    Column("product_id", ProductId, nullable=False),
    Column("version", BigInteger, nullable=False),  # the write that claimed it
    Column("claimed_at", DATETIME(fsp=6), nullable=False),
)

# The price of every SKU of every live product at its committed version (sku_prices.py).
sku_prices = Table(
    "sku_prices",
    metadata,
    Column("sku", Sku, primary_key=True),
    Column("product_id", ProductId, nullable=False),
    Column("version", BigInteger, nullable=False),  # the committed version that set it
    Column("amount_minor", BigInteger, nullable=False),
    Column("currency", CHAR(3, charset="ascii", collation="ascii_bin"), nullable=False),
)

# A write between storing its revision and committing it: what the repair sweep finishes.
pending_writes = Table(
    "pending_writes",
    metadata,
    Column("product_id", ProductId, primary_key=True),
    Column("version", BigInteger, primary_key=True),
    Column("started_at", DATETIME(fsp=6), nullable=False),
)

# Superseded revisions (cut down to stubs), and when: dropped once no writer can act on them.
revision_stubs = Table(
    "revision_stubs",
    metadata,
    Column("revision_id", String(64, collation="ascii_bin"), primary_key=True),
    Column("superseded_at", DATETIME(fsp=6), nullable=False),
)

outbox = outbox_table(metadata)
