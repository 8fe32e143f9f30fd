"""An index on inventory by (updated_at, sku): the catalog sync follows stock changes with it.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_inventory_changes", "inventory", ["updated_at", "sku"])


def downgrade() -> None:
    op.drop_index("ix_inventory_changes", "inventory")
