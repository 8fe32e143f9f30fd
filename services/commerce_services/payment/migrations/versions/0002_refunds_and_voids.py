"""Refunds and voids: a payment can end REFUNDED (its order was cancelled after the charge) or
VOIDED (the order was cancelled before any charge, which then never happens).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.mysql import DATETIME

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_constraint("ck_payments_status", "payments", type_="check")
    op.create_check_constraint(
        "ck_payments_status", "payments", "status IN ('SUCCEEDED', 'FAILED', 'REFUNDED', 'VOIDED')"
    )
    op.add_column("payments", sa.Column("refund_reference", sa.String(64), nullable=True))
    op.add_column("payments", sa.Column("updated_at", DATETIME(fsp=6), nullable=True))


def downgrade() -> None:
    op.drop_column("payments", "updated_at")
    op.drop_column("payments", "refund_reference")
    op.drop_constraint("ck_payments_status", "payments", type_="check")
    op.create_check_constraint(
        "ck_payments_status", "payments", "status IN ('SUCCEEDED', 'FAILED')"
    )
