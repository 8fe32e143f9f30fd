"""The catalog's category mapping: which categories each product is in, one of them primary.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.mysql import CHAR, DATETIME

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _product_id() -> CHAR:
    return CHAR(32, charset="ascii", collation="ascii_bin")


def upgrade() -> None:
    op.create_table(
        "product_mappings",
        sa.Column("product_id", _product_id(), primary_key=True),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("deleted", sa.Boolean, nullable=False),
        sa.Column("updated_at", DATETIME(fsp=6), nullable=False),
        mysql_engine="InnoDB",
    )
    op.create_table(
        "product_categories",
        sa.Column("product_id", _product_id(), nullable=False),
        sa.Column("category_id", sa.BigInteger, nullable=False),
        sa.Column("is_primary", sa.Boolean, nullable=False),
        # 1 on the primary row, NULL elsewhere: the unique key below then allows one primary
        # per product and any number of secondary rows.
        sa.Column(
            "primary_marker",
            sa.SmallInteger,
            sa.Computed("IF(is_primary, 1, NULL)", persisted=True),
        ),
        sa.PrimaryKeyConstraint("product_id", "category_id"),
        sa.ForeignKeyConstraint(
            ["product_id"], ["product_mappings.product_id"], name="fk_product_categories_product"
        ),
        sa.ForeignKeyConstraint(
            ["category_id"], ["categories.id"], name="fk_product_categories_category"
        ),
        sa.UniqueConstraint("product_id", "primary_marker", name="ux_product_categories_primary"),
        mysql_engine="InnoDB",
    )
    # Listing a category (or a subtree's categories) pages through product ids in key order.
    op.create_index(
        "ix_product_categories_listing", "product_categories", ["category_id", "product_id"]
    )


def downgrade() -> None:
    op.drop_table("product_categories")
    op.drop_table("product_mappings")
