"""The category tree with parent, level and materialized path.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.mysql import DATETIME, VARCHAR

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "categories",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(120), nullable=False),
        sa.Column("parent_id", sa.BigInteger, nullable=True),
        # Roots have no parent; 0 lets the unique key below cover sibling roots too.
        sa.Column(
            "parent_key", sa.BigInteger, sa.Computed("COALESCE(parent_id, 0)", persisted=True)
        ),
        sa.Column("level", sa.Integer, nullable=False),
        sa.Column("path", VARCHAR(1000, charset="ascii", collation="ascii_bin"), nullable=False),
        sa.Column("created_at", DATETIME(fsp=6), nullable=False),
        sa.Column("updated_at", DATETIME(fsp=6), nullable=False),
        sa.ForeignKeyConstraint(["parent_id"], ["categories.id"], name="fk_categories_parent"),
        sa.UniqueConstraint("parent_key", "name", name="ux_categories_sibling_name"),
        sa.CheckConstraint("level BETWEEN 1 AND 10", name="ck_categories_level"),
        mysql_engine="InnoDB",
    )
    op.create_index("ix_categories_path", "categories", ["path"])


def downgrade() -> None:
    op.drop_index("ix_categories_path", table_name="categories")
    op.drop_table("categories")
