"""Payments (one per order), the outbox, and the consumer tables.

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.mysql import DATETIME

from commerce_services.events.migration_v1 import (
    create_consumer_tables,
    create_outbox_table,
    drop_consumer_tables,
)

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "payments",
        sa.Column("payment_id", sa.CHAR(32), primary_key=True),
        sa.Column("order_id", sa.String(64), nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=False),
        sa.Column("currency", sa.CHAR(3), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(32), nullable=True),
        sa.Column("gateway_reference", sa.String(64), nullable=True),
        sa.Column("created_at", DATETIME(fsp=6), nullable=False),
        sa.UniqueConstraint("order_id", name="ux_payments_order"),
        sa.CheckConstraint("status IN ('SUCCEEDED', 'FAILED')", name="ck_payments_status"),
        mysql_engine="InnoDB",
    )
    create_outbox_table()
    create_consumer_tables()


def downgrade() -> None:
    drop_consumer_tables()
    op.drop_table("outbox")
    op.drop_table("payments")
