"""The buyer of each payment (the order's user, from `order_created`), so a customer can be
shown their own payments and nobody else's. Rows written before have none: staff only.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("payments", sa.Column("user_id", sa.String(64), nullable=True))


def downgrade() -> None:
    op.drop_column("payments", "user_id")
