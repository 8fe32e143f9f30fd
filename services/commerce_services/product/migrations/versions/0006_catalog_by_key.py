"""The catalog read by key: SKU claims, the price projection, pending writes, revision stubs to
drop, product titles for the degraded search, and the outbox of the catalog's change events.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.mysql import CHAR, DATETIME

from commerce_services.events.migration_v1 import create_outbox_table

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _ascii(length: int) -> sa.String:
    return sa.String(length, collation="ascii_bin")


def _product_id() -> CHAR:
    return CHAR(32, charset="ascii", collation="ascii_bin")


def upgrade() -> None:
    op.create_table(
        "sku_claims",
        sa.Column("sku", _ascii(64), primary_key=True),
        sa.Column("product_id", _product_id(), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("claimed_at", DATETIME(fsp=6), nullable=False),
        mysql_engine="InnoDB",
    )
    op.create_index("ix_sku_claims_product", "sku_claims", ["product_id"])
    op.create_table(
        "sku_prices",
        sa.Column("sku", _ascii(64), primary_key=True),
        sa.Column("product_id", _product_id(), nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("currency", CHAR(3, charset="ascii", collation="ascii_bin"), nullable=False),
        mysql_engine="InnoDB",
    )
    op.create_index("ix_sku_prices_product", "sku_prices", ["product_id"])
    op.create_table(
        "pending_writes",
        sa.Column("product_id", _product_id(), primary_key=True),
        sa.Column("version", sa.BigInteger, primary_key=True),
        sa.Column("started_at", DATETIME(fsp=6), nullable=False),
        mysql_engine="InnoDB",
    )
    op.create_index("ix_pending_writes_started", "pending_writes", ["started_at"])
    op.create_table(
        "revision_stubs",
        sa.Column("revision_id", _ascii(64), primary_key=True),
        sa.Column("superseded_at", DATETIME(fsp=6), nullable=False),
        mysql_engine="InnoDB",
    )
    op.create_index("ix_revision_stubs_superseded", "revision_stubs", ["superseded_at"])
    # Products committed before this revision get their title from the catalog upkeep.
    op.add_column(
        "product_mappings",
        sa.Column("title", sa.String(200, collation="utf8mb4_unicode_ci"), nullable=True),
    )
    op.create_index("ix_product_mappings_title", "product_mappings", ["title"])
    op.create_index(
        "ft_product_mappings_title", "product_mappings", ["title"], mysql_prefix="FULLTEXT"
    )
    create_outbox_table()


def downgrade() -> None:
    op.drop_table("outbox")
    op.drop_index("ft_product_mappings_title", "product_mappings")
    op.drop_index("ix_product_mappings_title", "product_mappings")
    op.drop_column("product_mappings", "title")
    op.drop_table("revision_stubs")
    op.drop_table("pending_writes")
    op.drop_table("sku_prices")
    op.drop_table("sku_claims")
